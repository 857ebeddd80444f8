// The CTI WebSocket (/api/cti): the node's live events for this agent.
// It reconnects by itself (1 s, doubling to 30 s) with the current access
// token, and says so through onStatus(true|false).

const CLOSE_UNAUTHORIZED = 4401;

export class Cti {
  constructor(api, { onEvent, onStatus }) {
    this.api = api;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.ws = null;
    this.wait = 1000;
    this.stopped = true;
    this.pending = []; // frames sent while the socket is down, sent when it is back
    this._ping = null;
  }

  start() {
    this.stopped = false;
    this._open();
  }

  stop() {
    this.stopped = true;
    clearInterval(this._ping);
    this.ws?.close(1000);
    this.ws = null;
  }

  send(frame) {
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
    } else {
      // Presence is the frame that matters after a drop: keep the latest of each type.
      this.pending = this.pending.filter((f) => f.type !== frame.type);
      this.pending.push(frame);
    }
  }

  _open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const token = encodeURIComponent(this.api.session?.token ?? "");
    const ws = new WebSocket(`${scheme}://${location.host}/api/cti?token=${token}`);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.wait = 1000;
      this.onStatus(true);
      for (const frame of this.pending.splice(0)) ws.send(JSON.stringify(frame));
      clearInterval(this._ping);
      this._ping = setInterval(() => this.send({ type: "ping" }), 25000);
    };
    ws.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      this.onEvent(event);
    };
    ws.onclose = async (closed) => {
      clearInterval(this._ping);
      if (this.stopped || this.ws !== ws) return;
      this.onStatus(false);
      // A refused upgrade (an expired token: 401) shows as a socket that never opened.
      if (closed.code === CLOSE_UNAUTHORIZED || !opened) {
        try {
          await this.api.refresh();
        } catch {
          /* the next attempt tells */
        }
      }
      setTimeout(() => !this.stopped && this._open(), this.wait);
      this.wait = Math.min(this.wait * 2, 30000);
    };
  }
}
