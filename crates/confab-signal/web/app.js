// Confab in a browser: signaling over WebSocket, a full mesh of RTCPeerConnections, and
// chat on each pair's `chat` data channel (docs/protocol.md, sections 1 and 2), with a
// safety code per peer to compare out of band (PROTOCOL.md section 4).
//
// Everything the page knows lives in `session`; the DOM is drawn from it. Tests read it
// through `window.confab.state()` rather than scraping the DOM.

const APP = 'confab-web/0.1';
const PROTOCOL_VERSION = 1;
const MAX_TEXT_BYTES = 64 * 1024;
const MAX_LOG_ENTRIES = 1000; // older entries are dropped so a long session stays light

const $ = (selector) => document.querySelector(selector);

const session = {
  ws: null,
  signaling: 'disconnected', // disconnected | connecting | connected
  id: null,
  room: null,
  name: null,
  ownIceServers: [], // typed by the user
  iceServers: [], // theirs, then those the server's welcome offers
  peers: new Map(), // peer id -> Peer
  messages: new Map(), // message id -> message; a Map keeps arrival order
  errors: [], // {code, message} from the server or the page itself
};

// ---------------------------------------------------------------------------------------
// Logging: everything that crosses a wire, and every state change, lands in the log panel.

function log(kind, text, detail) {
  const entry = document.createElement('div');
  entry.className = 'entry';
  entry.dataset.kind = kind;
  const time = document.createElement('span');
  time.className = 't';
  time.textContent = new Date().toISOString().slice(11, 23);
  entry.append(time, ' ', text);
  if (detail !== undefined) {
    // Long payloads (SDP) fold away so the log stays scannable.
    const more = document.createElement('details');
    const summary = document.createElement('summary');
    summary.textContent = 'show';
    const body = document.createElement('pre');
    body.textContent = detail;
    more.append(summary, body);
    entry.append(' ', more);
  }
  const panel = $('#log');
  const atBottom = panel.scrollTop + panel.clientHeight >= panel.scrollHeight - 4;
  panel.append(entry);
  while (panel.childElementCount > MAX_LOG_ENTRIES) panel.firstElementChild.remove();
  if (atBottom) panel.scrollTop = panel.scrollHeight;
  if (kind === 'error') console.warn(`[confab] ${text}`);
}

function showError(code, message) {
  session.errors.push({ code, message });
  log('error', `${code}: ${message}`);
  const box = $('#errors');
  box.textContent = `${code}: ${message}`;
  box.hidden = false;
}

// crypto.randomUUID() exists only in secure contexts (https or localhost), and a LAN
// server is usually plain http, so fall back to a v4 UUID from getRandomValues.
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const short = (id) => (id && id.length > 8 ? `${id.slice(0, 8)}…` : id);

// ---------------------------------------------------------------------------------------
// Safety codes (PROTOCOL.md section 4): what two users compare to know nobody sits in the
// middle of their connection.

// SHA-256 (FIPS 180-4) in plain JavaScript, the fallback for crypto.subtle: like
// randomUUID, crypto.subtle exists only in secure contexts, and a LAN server is usually
// plain http. Small, not fast: it hashes two fingerprints per peer connection.
// SHA-256 round constants (FIPS 180-4, 4.2.2): the first 32 bits of the fractional parts
// of the cube roots of the first 64 primes.
const SHA256_K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

function sha256js(bytes) {
  // The initial hash value (5.3.3): the first 32 bits of the fractional parts of the
  // square roots of the first 8 primes.
  const h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  // Padding (5.1.1): the message, one 1 bit, zeros, and the length in bits as a 64-bit
  // big-endian number, filling a whole number of 64-byte blocks.
  const padded = new Uint8Array(Math.ceil((bytes.length + 9) / 64) * 64);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  const bits = bytes.length * 8;
  view.setUint32(padded.length - 8, Math.floor(bits / 2 ** 32));
  view.setUint32(padded.length - 4, bits >>> 0);

  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  const w = new Uint32Array(64); // the message schedule; a Uint32Array wraps sums mod 2^32
  for (let block = 0; block < padded.length; block += 64) {
    for (let t = 0; t < 16; t += 1) w[t] = view.getUint32(block + 4 * t);
    for (let t = 16; t < 64; t += 1) {
      const s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
      const s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    let [a, b, c, d, e, f, g, k] = h; // k is the spec's h
    for (let t = 0; t < 64; t += 1) {
      const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[t] + w[t]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      k = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
  }
  const digest = new Uint8Array(32);
  const out = new DataView(digest.buffer);
  h.forEach((word, i) => out.setUint32(4 * i, word));
  return digest;
}

async function sha256(bytes) {
  if (globalThis.crypto?.subtle) return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return sha256js(bytes);
}

const toHex = (bytes) => [...bytes].map((x) => x.toString(16).padStart(2, '0')).join('');

/** The `sha-256` fingerprint an SDP announces (session or media level), upper case. */
function sdpFingerprint(sdp) {
  for (const line of (sdp || '').split(/\r?\n/)) {
    const match = /^a=fingerprint:(\S+)\s+(\S+)/.exec(line.trim());
    if (match && match[1].toLowerCase() === 'sha-256') return match[2].toUpperCase();
  }
  return null;
}

/**
 * The code for a connection between two DTLS fingerprints: sorted, joined with a newline,
 * SHA-256 of that UTF-8 text, its first 4 bytes big-endian modulo 10^9, as "123 456 789".
 */
async function safetyCode(ours, theirs) {
  const text = [ours.toUpperCase(), theirs.toUpperCase()].sort().join('\n');
  const digest = await sha256(new TextEncoder().encode(text));
  const number = new DataView(digest.buffer, digest.byteOffset, 4).getUint32(0) % 1_000_000_000;
  const digits = String(number).padStart(9, '0');
  return `${digits.slice(0, 3)} ${digits.slice(3, 6)} ${digits.slice(6)}`;
}

// ---------------------------------------------------------------------------------------
// Signaling (section 1).

function sendFrame(frame) {
  if (session.ws?.readyState !== WebSocket.OPEN) {
    log('error', `signaling is not open; dropped a ${frame.type} frame`);
    return false;
  }
  session.ws.send(JSON.stringify(frame));
  if (frame.type !== 'signal') log('signal-out', `→ ${JSON.stringify(redact(frame))}`);
  return true;
}

// Passwords and resume tokens stay out of the log.
function redact(frame) {
  const copy = { ...frame };
  if ('password' in copy) copy.password = '…';
  if ('token' in copy) copy.token = '…';
  return copy;
}

/** `own` ICE servers, then the `offered` ones, each URL once. */
function withOffered(own, offered) {
  const seen = new Set(own.flatMap((server) => [].concat(server.urls)));
  const merged = [...own];
  for (const server of offered) {
    const urls = [].concat(server.urls).filter((url) => !seen.has(url));
    for (const url of urls) seen.add(url);
    if (urls.length) merged.push({ ...server, urls });
  }
  return merged;
}

function join({ server, room, name, password, ice }) {
  if (session.ws) leave();
  session.ownIceServers = (ice || '')
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((url) => ({ urls: url }));
  session.iceServers = session.ownIceServers;
  session.room = room;
  session.name = name;
  session.errors = [];
  $('#errors').hidden = true;
  setSignaling('connecting');
  log('info', `connecting to ${server}`);

  let ws;
  try {
    ws = new WebSocket(server);
  } catch (err) {
    setSignaling('disconnected');
    showError('bad-url', String(err.message || err));
    return;
  }
  session.ws = ws;
  ws.onopen = () => {
    const frame = { type: 'join', room, name, version: PROTOCOL_VERSION };
    if (password) frame.password = password;
    sendFrame(frame);
  };
  ws.onmessage = (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      log('error', `bad JSON from the server: ${String(event.data).slice(0, 200)}`);
      return;
    }
    if (frame.type !== 'signal') log('signal-in', `← ${JSON.stringify(redact(frame))}`);
    onServerFrame(frame);
  };
  ws.onclose = (event) => {
    if (session.ws !== ws) return; // an old socket closing after a new join
    log('info', `signaling closed (code ${event.code}); peer connections stay up`);
    session.ws = null;
    setSignaling('disconnected');
    render();
  };
  ws.onerror = () => log('error', 'signaling socket error');
  render();
}

function onServerFrame(frame) {
  switch (frame.type) {
    case 'welcome':
      session.id = frame.id;
      session.room = frame.room;
      // The server's STUN and TURN servers (its relay, with fresh credentials) go with the
      // user's own into every connection from now on.
      session.iceServers = withOffered(session.ownIceServers, frame.ice_servers || []);
      setSignaling('connected');
      // The newcomer offers to everyone already here; creating the channel first makes
      // `negotiationneeded` fire, which sends the offer.
      for (const { id, name } of frame.peers || []) addPeer(id, name, { initiator: true });
      break;
    case 'peer-joined':
      // The newcomer will offer: only make room for it.
      addPeer(frame.peer.id, frame.peer.name, { initiator: false });
      break;
    case 'peer-left':
      removePeer(frame.id);
      break;
    case 'peers':
      for (const { id, name } of frame.peers || []) {
        const peer = session.peers.get(id);
        if (peer) peer.serverName = name;
      }
      break;
    case 'signal': {
      let peer = session.peers.get(frame.from);
      // Not expected (peer-joined comes first), but a signal must never be lost.
      if (!peer) peer = addPeer(frame.from, frame.from, { initiator: false });
      peer.onSignal(frame.data);
      break;
    }
    case 'error':
      showError(frame.code, frame.message);
      // Before a welcome the socket is not in a room: let the user try again.
      if (!session.id) {
        session.ws?.close();
        session.ws = null;
        setSignaling('disconnected');
      }
      break;
    default:
      log('info', `ignored a server frame of type ${frame.type}`);
  }
  render();
}

function setSignaling(state) {
  session.signaling = state;
  const status = $('#status');
  status.dataset.state = state;
  status.textContent =
    state === 'connected' ? `in room ${session.room}` : state === 'connecting' ? 'connecting…' : 'not connected';
}

// A closing tab leaves the room the same way, so the others know at once.
window.addEventListener('pagehide', () => {
  if (session.ws) leave();
});

function leave() {
  if (session.ws) {
    sendFrame({ type: 'leave' });
    session.ws.close();
  }
  session.ws = null;
  for (const id of [...session.peers.keys()]) removePeer(id);
  session.id = null;
  setSignaling('disconnected');
  render();
}

// ---------------------------------------------------------------------------------------
// One peer: an RTCPeerConnection negotiated with "perfect negotiation"
// (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example), and its chat channel.

class Peer {
  constructor(id, serverName, { initiator }) {
    this.id = id;
    this.serverName = serverName;
    this.helloName = null;
    // The lower id (plain string comparison) is polite: it yields when offers cross.
    this.polite = session.id < id;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.pendingCandidates = []; // remote candidates that came before a remote description
    this.inbox = Promise.resolve(); // remote signals are applied one at a time, in order
    this.channel = null;
    this.fingerprints = null; // {local, remote}: the DTLS fingerprints of the two SDPs
    this.safetyCode = null; // "123 456 789" once both descriptions are in

    const pc = new RTCPeerConnection({ iceServers: session.iceServers });
    this.pc = pc;
    pc.onnegotiationneeded = () => this.negotiate();
    pc.onicecandidate = ({ candidate }) => {
      // A null candidate (or, in older browsers, an empty one) ends the gathering.
      const json = candidate && candidate.candidate ? candidate.toJSON() : null;
      log('ice', `local candidate → ${short(id)}: ${json ? json.candidate : 'end of candidates'}`);
      this.signal({ kind: 'candidate', candidate: json });
    };
    pc.onconnectionstatechange = () => {
      log('state', `${short(id)} connection ${pc.connectionState}`);
      render();
    };
    pc.oniceconnectionstatechange = () => log('state', `${short(id)} ICE ${pc.iceConnectionState}`);
    pc.onicegatheringstatechange = () => log('state', `${short(id)} ICE gathering ${pc.iceGatheringState}`);
    pc.onsignalingstatechange = () => {
      log('state', `${short(id)} signaling ${pc.signalingState}`);
      // Both descriptions are in once an offer/answer exchange completes.
      this.updateSafetyCode();
    };
    pc.ondatachannel = ({ channel }) => {
      if (channel.label === 'chat' && !this.channel) this.adopt(channel);
      else log('info', `${short(id)} opened channel "${channel.label}", which this page does not use`);
    };
    // The newcomer creates the one `chat` channel before its first offer.
    if (initiator) this.adopt(pc.createDataChannel('chat', { ordered: true }));
  }

  get name() {
    return this.helloName ?? this.serverName;
  }

  get channelOpen() {
    return this.channel?.readyState === 'open';
  }

  // The certificates cannot change during a connection, but this runs on every signaling
  // state change and only recomputes when the pair of fingerprints is new.
  updateSafetyCode() {
    const local = sdpFingerprint(this.pc.localDescription?.sdp);
    const remote = sdpFingerprint(this.pc.remoteDescription?.sdp);
    if (!local || !remote) return;
    if (this.fingerprints?.local === local && this.fingerprints?.remote === remote) return;
    const fingerprints = { local, remote };
    this.fingerprints = fingerprints;
    safetyCode(local, remote).then(
      (code) => {
        if (this.fingerprints !== fingerprints) return; // a newer pair won
        this.safetyCode = code;
        log('info', `${short(this.id)} safety code ${code} (local ${local}, remote ${remote})`);
        render();
      },
      (err) => log('error', `${short(this.id)} safety code failed: ${err.message}`),
    );
  }

  signal(data) {
    if (data.kind === 'description') {
      log('signal-out', `→ ${short(this.id)} ${data.description.type}`, data.description.sdp);
    }
    sendFrame({ type: 'signal', to: this.id, data });
  }

  async negotiate() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription(); // an offer, or a rollback-free answer
      this.signal({ kind: 'description', description: this.pc.localDescription.toJSON() });
    } catch (err) {
      log('error', `${short(this.id)} negotiation failed: ${err.message}`);
    } finally {
      this.makingOffer = false;
    }
  }

  onSignal(data) {
    this.inbox = this.inbox.then(() => this.applySignal(data)).catch((err) => {
      log('error', `${short(this.id)} signal failed: ${err.message}`);
    });
  }

  async applySignal(data) {
    if (data?.kind === 'description') {
      const description = data.description;
      log('signal-in', `← ${short(this.id)} ${description?.type}`, description?.sdp);
      const readyForOffer =
        !this.makingOffer && (this.pc.signalingState === 'stable' || this.settingRemoteAnswer);
      const collision = description.type === 'offer' && !readyForOffer;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) {
        log('info', `${short(this.id)} offers crossed: ignoring theirs (we are impolite)`);
        return;
      }
      this.settingRemoteAnswer = description.type === 'answer';
      await this.pc.setRemoteDescription(description); // rolls back our offer if needed
      this.settingRemoteAnswer = false;
      for (const queued of this.pendingCandidates.splice(0)) await this.addCandidate(queued);
      if (description.type === 'offer') {
        await this.pc.setLocalDescription();
        this.signal({ kind: 'description', description: this.pc.localDescription.toJSON() });
      }
    } else if (data?.kind === 'candidate') {
      const candidate = data.candidate;
      log('ice', `remote candidate ← ${short(this.id)}: ${candidate?.candidate || 'end of candidates'}`);
      if (!this.pc.remoteDescription) this.pendingCandidates.push(candidate);
      else await this.addCandidate(candidate);
    } else {
      log('info', `${short(this.id)} sent a signal of unknown kind ${data?.kind}`);
    }
  }

  async addCandidate(candidate) {
    try {
      // null, or a candidate string of "", means the remote side is done gathering.
      if (!candidate || !candidate.candidate) await this.pc.addIceCandidate();
      else await this.pc.addIceCandidate(candidate);
    } catch (err) {
      // Candidates of an offer we ignored are expected to fail.
      if (!this.ignoreOffer) log('error', `${short(this.id)} bad candidate: ${err.message}`);
    }
  }

  adopt(channel) {
    this.channel = channel;
    channel.onopen = () => {
      log('state', `${short(this.id)} channel "chat" open`);
      this.send({ type: 'hello', name: session.name, app: APP });
      this.resendUnacked();
      render();
    };
    channel.onclose = () => {
      log('state', `${short(this.id)} channel "chat" closed`);
      render();
    };
    channel.onerror = (event) => log('error', `${short(this.id)} channel error: ${event.error?.message ?? ''}`);
    channel.onmessage = (event) => this.onMessage(event.data);
  }

  // What went out to this peer and was not acknowledged goes again, same id: under loss
  // Chromium may call a channel open before it is, and then fire open once more when it
  // is; what was sent in between was lost. The receiver shows each id once.
  resendUnacked() {
    for (const m of session.messages.values()) {
      if (m.mine && m.sentTo.includes(this.id) && !m.ackedBy.has(this.id)) {
        this.send({ type: 'chat', id: m.id, text: m.text, ts: m.ts, scope: m.scope });
      }
    }
  }

  send(message) {
    if (!this.channelOpen) return false;
    try {
      this.channel.send(JSON.stringify(message));
      return true;
    } catch (error) {
      // E.g. larger than the peer's max-message-size: say so rather than lose it quietly.
      log('error', `${short(this.id)} send failed: ${error.message}`);
      return false;
    }
  }

  onMessage(data) {
    let message;
    try {
      if (typeof data !== 'string') throw new Error('binary message on the chat channel');
      message = JSON.parse(data);
      if (typeof message !== 'object' || message === null) throw new Error('not a JSON object');
    } catch (err) {
      log('error', `${short(this.id)} sent a bad message (${err.message})`);
      return;
    }
    switch (message.type) {
      case 'hello':
        if (typeof message.name === 'string' && message.name) this.helloName = message.name.slice(0, 64);
        log('info', `${short(this.id)} is ${this.helloName} (${String(message.app)})`);
        break;
      case 'chat':
        receiveChat(this, message);
        break;
      case 'ack':
        receiveAck(this, message.id);
        break;
      default:
        break; // unknown types are ignored by contract (calls, files: not in this page)
    }
    render();
  }

  close() {
    // Closing the channel first tells the peer at once that we are gone; closing the
    // connection right away could cut that message off, so it waits a moment.
    if (this.channel && this.channel.readyState === 'open') {
      this.channel.close();
      setTimeout(() => this.pc.close(), 100);
    } else {
      this.pc.close();
    }
  }
}

function addPeer(id, name, options) {
  let peer = session.peers.get(id);
  if (peer) return peer;
  peer = new Peer(id, name, options);
  session.peers.set(id, peer);
  log('info', `peer ${name} (${id}) ${options.initiator ? 'is here: offering' : 'joined: waiting for its offer'}`);
  return peer;
}

function removePeer(id) {
  const peer = session.peers.get(id);
  if (!peer) return;
  peer.close();
  session.peers.delete(id);
  log('info', `peer ${peer.name} (${id}) left`);
}

// ---------------------------------------------------------------------------------------
// Chat (section 2).

function sendChat(text, to = null) {
  if (new TextEncoder().encode(text).length > MAX_TEXT_BYTES) {
    showError('too-long', 'a message is at most 64 KiB');
    return null;
  }
  const id = uuid();
  const ts = Date.now();
  const scope = to ? 'direct' : 'room';
  const targets = to ? [session.peers.get(to)].filter(Boolean) : [...session.peers.values()];
  // A room message goes out with the same id on every open channel.
  const sentTo = targets.filter((peer) => peer.send({ type: 'chat', id, text, ts, scope })).map((p) => p.id);
  if (sentTo.length === 0) log('error', 'no open channel: the message was not sent');
  session.messages.set(id, { id, from: session.id, to, text, ts, scope, mine: true, sentTo, ackedBy: new Set() });
  render();
  return id;
}

function receiveChat(peer, message) {
  if (typeof message.id !== 'string' || typeof message.text !== 'string') {
    log('error', `${short(peer.id)} sent a chat without id or text`);
    return;
  }
  // Every copy is acked, so a sender that resends learns it arrived...
  peer.send({ type: 'ack', id: message.id });
  // ...but each id is shown only once.
  const known = session.messages.get(message.id);
  if (known) {
    known.copies = (known.copies ?? 0) + 1;
    log('info', `${short(peer.id)} sent ${message.id} again: acked, not shown`);
    return;
  }
  session.messages.set(message.id, {
    id: message.id,
    from: peer.id,
    fromName: peer.name,
    to: message.scope === 'direct' ? session.id : null,
    text: message.text,
    ts: Number(message.ts) || Date.now(),
    scope: message.scope === 'direct' ? 'direct' : 'room',
    mine: false,
    copies: 1, // how many times it arrived, for tests
  });
}

function receiveAck(peer, id) {
  const message = session.messages.get(id);
  if (message?.mine && message.sentTo.includes(peer.id)) message.ackedBy.add(peer.id);
}

const isAcked = (m) => m.mine && m.sentTo.length > 0 && m.ackedBy.size === m.sentTo.length;

// ---------------------------------------------------------------------------------------
// Drawing. The state is small, so the peer list is redrawn whole; messages are drawn once
// and only their ticks change.

function render() {
  const joined = Boolean(session.id);
  // The form describes the current session while there is one.
  for (const field of $('#join-form').elements) {
    if (field.id !== 'leave') field.disabled = Boolean(session.ws);
  }
  $('#join').hidden = Boolean(session.ws);
  $('#leave').hidden = !session.ws && !joined;
  $('#message').disabled = !joined;
  $('#send').disabled = !joined;
  $('#me').textContent = joined ? `You: ${session.name} (${session.id})` : 'Not in a room.';
  renderPeers();
  renderMessages();
}

function renderPeers() {
  const list = $('#peers');
  const target = $('#target');
  const chosen = target.value;
  list.replaceChildren();
  target.replaceChildren(new Option('Everyone', ''));
  for (const peer of session.peers.values()) {
    const item = document.createElement('li');
    item.className = 'peer';
    item.dataset.id = peer.id;
    item.dataset.state = peer.pc.connectionState;
    item.dataset.channel = peer.channel ? peer.channel.readyState : 'none';
    item.classList.toggle('selected', peer.id === chosen);
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = peer.name;
    const id = document.createElement('span');
    id.className = 'id';
    id.textContent = short(peer.id);
    id.title = peer.id;
    const state = document.createElement('span');
    state.className = 'state';
    state.textContent = peer.channelOpen ? 'connected' : peer.pc.connectionState;
    item.append(name, id, state);
    if (peer.safetyCode) {
      // Read aloud and compared with the peer's own: equal codes, no one in the middle.
      const line = document.createElement('div');
      line.className = 'safety-code';
      line.dataset.peer = peer.id;
      line.dataset.code = peer.safetyCode;
      line.title = `Compare with the code ${peer.name} sees for you: if they are equal, nobody is in the middle`;
      const code = document.createElement('code');
      code.textContent = peer.safetyCode;
      line.append('Safety code ', code);
      item.append(line);
    }
    item.onclick = () => {
      target.value = target.value === peer.id ? '' : peer.id;
      renderPeers();
    };
    list.append(item);
    target.append(new Option(`${peer.name} (direct)`, peer.id));
  }
  target.value = session.peers.has(chosen) ? chosen : '';
}

function renderMessages() {
  const box = $('#messages');
  for (const message of session.messages.values()) {
    let element = box.querySelector(`.msg[data-id="${CSS.escape(message.id)}"]`);
    if (!element) {
      element = drawMessage(message);
      box.append(element);
      box.scrollTop = box.scrollHeight;
    }
    if (message.mine) {
      const ticks = element.querySelector('.ticks');
      const acked = isAcked(message);
      const count = message.ackedBy.size;
      ticks.dataset.acked = String(acked);
      element.dataset.acked = String(acked);
      ticks.textContent =
        message.sentTo.length === 0 ? 'not sent' : acked ? '✓✓ delivered' : count ? `✓ ${count}/${message.sentTo.length}` : '✓ sent';
    }
  }
}

function drawMessage(message) {
  const element = document.createElement('div');
  element.className = 'msg';
  element.dataset.id = message.id;
  element.dataset.scope = message.scope;
  element.dataset.mine = String(message.mine);
  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('span');
  const peerName = (id) => session.peers.get(id)?.name ?? short(id);
  who.textContent = message.mine ? `you${message.to ? ` → ${peerName(message.to)}` : ''}` : message.fromName;
  const scope = document.createElement('span');
  scope.className = 'scope';
  scope.textContent = message.scope === 'direct' ? 'direct' : 'room';
  const time = document.createElement('span');
  time.textContent = new Date(message.ts).toLocaleTimeString();
  meta.append(who, scope, time);
  const text = document.createElement('div');
  text.className = 'text';
  text.textContent = message.text;
  element.append(meta, text);
  if (message.mine) {
    const ticks = document.createElement('div');
    ticks.className = 'ticks';
    element.append(ticks);
  }
  return element;
}

// ---------------------------------------------------------------------------------------
// Wiring.

function defaultServerUrl() {
  if (location.protocol !== 'http:' && location.protocol !== 'https:') return 'ws://localhost:8787/ws';
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

function init() {
  const params = new URLSearchParams(location.search);
  $('#server').value = params.get('server') || defaultServerUrl();
  $('#room').value = params.get('room') || '';
  $('#name').value = params.get('name') || '';

  $('#join-form').onsubmit = (event) => {
    event.preventDefault();
    join({
      server: $('#server').value.trim(),
      room: $('#room').value.trim(),
      name: $('#name').value.trim(),
      password: $('#password').value,
      ice: $('#ice').value,
    });
  };
  $('#leave').onclick = () => leave();
  $('#composer').onsubmit = (event) => {
    event.preventDefault();
    const text = $('#message').value;
    if (!text) return;
    if (sendChat(text, $('#target').value || null)) $('#message').value = '';
  };
  $('#clear-log').onclick = (event) => {
    event.preventDefault(); // a button inside <summary> would otherwise fold the panel
    $('#log').replaceChildren();
  };
  window.addEventListener('beforeunload', () => session.ws && sendFrame({ type: 'leave' }));
  render();
}

// For tests and the curious: a plain-data view of the session, and the same actions the
// form and composer trigger.
window.confab = {
  state: () => ({
    id: session.id,
    room: session.room,
    name: session.name,
    signaling: session.signaling,
    errors: [...session.errors],
    peers: [...session.peers.values()].map((p) => ({
      id: p.id,
      name: p.name,
      state: p.pc.connectionState,
      iceState: p.pc.iceConnectionState,
      channelOpen: p.channelOpen,
      polite: p.polite,
      safetyCode: p.safetyCode,
      fingerprints: p.fingerprints && { ...p.fingerprints },
    })),
    messages: [...session.messages.values()].map((m) => ({
      id: m.id,
      from: m.from,
      to: m.to,
      text: m.text,
      ts: m.ts,
      scope: m.scope,
      mine: m.mine,
      sentTo: m.mine ? [...m.sentTo] : [],
      ackedBy: m.mine ? [...m.ackedBy] : [],
      acked: isAcked(m),
      copies: m.copies ?? 0,
    })),
  }),
  join,
  leave,
  send: sendChat,
  // The RTCPeerConnection of one peer, for tests that renegotiate (e.g. to force glare).
  peerConnection: (id) => session.peers.get(id)?.pc ?? null,
  // Safety codes, for tests: the recipe, and the pure-JS SHA-256 (hex of UTF-8 text) that
  // stands in for crypto.subtle outside secure contexts.
  safetyCode,
  sha256js: (text) => toHex(sha256js(new TextEncoder().encode(text))),
};

init();
