// A ringtone made with WebAudio (no file to ship): two short beeps every 2 s.
// The AudioContext is created on the login click, since browsers only let a
// page start sound after a user gesture.

export class Ringtone {
  constructor() {
    this.context = null;
    this.timer = null;
    this.sinkId = "";
  }

  unlock() {
    if (!this.context) {
      const Context = window.AudioContext || window.webkitAudioContext;
      if (Context) this.context = new Context();
    }
    this.context?.resume?.();
  }

  setSink(deviceId) {
    this.sinkId = deviceId;
    // Chromium lets an AudioContext play on a chosen output.
    this.context?.setSinkId?.(deviceId).catch(() => {});
  }

  start() {
    if (this.timer || !this.context) return;
    const ring = () => {
      const now = this.context.currentTime;
      for (const offset of [0, 0.3]) this._beep(now + offset, 0.2);
    };
    ring();
    this.timer = setInterval(ring, 2000);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  get ringing() {
    return this.timer !== null;
  }

  _beep(at, seconds) {
    const osc = this.context.createOscillator();
    const gain = this.context.createGain();
    osc.frequency.value = 440;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.2, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + seconds);
    osc.connect(gain).connect(this.context.destination);
    osc.start(at);
    osc.stop(at + seconds + 0.05);
  }
}
