// The node's REST API (switch/web): login, token refresh, agent state,
// wrap-up. Access tokens live 15 minutes: a 401 "token_expired" is answered
// by one refresh and a retry, and the refresh is also done ahead of expiry.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function decode(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body?.message || body?.error?.message || `${response.status} ${response.statusText}`;
    const code = body?.error?.code || body?.error || body?.code || String(response.status);
    throw new ApiError(response.status, typeof code === "string" ? code : String(response.status), message);
  }
  return body;
}

export class Api {
  constructor(base = "") {
    this.base = base;
    this.session = null; // {token, refresh, role, tenant, user, agent, expires_in}
    this._timer = null;
    this.onSession = () => {};
  }

  /** POST /api/login. ApiError 404 means the node has no API (SIP-only mode). */
  async login(username, password) {
    const response = await fetch(`${this.base}/api/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    this._keep(await decode(response));
    return this.session;
  }

  async refresh() {
    if (!this.session) throw new ApiError(401, "unauthorized", "not logged in");
    const response = await fetch(`${this.base}/api/refresh`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh: this.session.refresh }),
    });
    this._keep(await decode(response));
    return this.session;
  }

  _keep(session) {
    this.session = session;
    clearTimeout(this._timer);
    const seconds = Number(session.expires_in) || 900;
    // Refresh at 80% of the lifetime, so a request never meets an expired token.
    this._timer = setTimeout(() => this.refresh().catch(() => {}), seconds * 800);
    this.onSession(session);
  }

  forget() {
    clearTimeout(this._timer);
    this.session = null;
  }

  async request(method, path, body, retried = false) {
    const headers = { Authorization: `Bearer ${this.session?.token ?? ""}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && !retried && this.session) {
      await this.refresh();
      return this.request(method, path, body, true);
    }
    return decode(response);
  }

  agent(id) {
    return this.request("GET", `/api/agents/${encodeURIComponent(id)}`);
  }

  setState(id, state, reason) {
    const body = reason ? { state, reason } : { state };
    return this.request("PUT", `/api/agents/${encodeURIComponent(id)}/state`, body);
  }

  saveDisposition(callId, disposition, notes) {
    return this.request("PUT", `/api/calls/${encodeURIComponent(callId)}/disposition`, {
      disposition,
      notes,
    });
  }
}
