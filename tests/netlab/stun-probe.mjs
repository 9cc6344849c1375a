// A tiny STUN tool for checking the lab's NATs (lab_verify in lab.sh), no dependencies:
//
//   node stun-probe.mjs server IP:PORT
//       answers Binding Requests with XOR-MAPPED-ADDRESS (a second STUN server beside
//       coturn, so one socket's mappings towards two destinations can be compared)
//   node stun-probe.mjs client [--port P] [--tries N] [--listen MS] IP:PORT...
//       from ONE local UDP socket, asks each server for its mapped address (N tries of
//       700 ms, default 3; null when none answers), then listens MS
//       more milliseconds; prints {"local":..,"mapped":{target: "ip:port"},"received":[..]}
//       (`received`: plain datagrams that came in while listening, with their source)
//   node stun-probe.mjs send --from-port P IP:PORT TEXT
//       sends one plain datagram (an "unsolicited" packet for the filtering check)

import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';

const MAGIC = 0x2112a442;

function request() {
  const msg = Buffer.alloc(20);
  msg.writeUInt16BE(0x0001, 0); // Binding Request
  msg.writeUInt16BE(0, 2);
  msg.writeUInt32BE(MAGIC, 4);
  randomBytes(12).copy(msg, 8);
  return msg;
}

function isStun(msg) {
  return msg.length >= 20 && msg.readUInt32BE(4) === MAGIC && (msg[0] & 0xc0) === 0;
}

function xorMapped(msg) {
  let at = 20;
  while (at + 4 <= msg.length) {
    const type = msg.readUInt16BE(at);
    const len = msg.readUInt16BE(at + 2);
    if (type === 0x0020 && msg[at + 5] === 0x01) {
      const port = msg.readUInt16BE(at + 6) ^ (MAGIC >>> 16);
      const ip = [0, 1, 2, 3].map((i) => msg[at + 8 + i] ^ ((MAGIC >>> (24 - 8 * i)) & 0xff)).join('.');
      return `${ip}:${port}`;
    }
    at += 4 + len + ((4 - (len % 4)) % 4);
  }
  return null;
}

function split(target) {
  const i = target.lastIndexOf(':');
  return [target.slice(0, i), Number(target.slice(i + 1))];
}

function response(req, rinfo) {
  const msg = Buffer.alloc(32);
  msg.writeUInt16BE(0x0101, 0); // Binding Success Response
  msg.writeUInt16BE(12, 2);
  req.copy(msg, 4, 4, 20); // magic cookie and transaction id
  msg.writeUInt16BE(0x0020, 20);
  msg.writeUInt16BE(8, 22);
  msg.writeUInt8(0, 24);
  msg.writeUInt8(0x01, 25);
  msg.writeUInt16BE(rinfo.port ^ (MAGIC >>> 16), 26);
  rinfo.address.split('.').forEach((b, i) => msg.writeUInt8(Number(b) ^ ((MAGIC >>> (24 - 8 * i)) & 0xff), 28 + i));
  return msg;
}

const [mode, ...rest] = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = rest.indexOf(name);
  if (i < 0) return fallback;
  const [value] = rest.splice(i, 2).slice(1);
  return value;
};

if (mode === 'server') {
  const [ip, port] = split(rest[0]);
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    if (isStun(msg) && msg.readUInt16BE(0) === 0x0001) sock.send(response(msg, rinfo), rinfo.port, rinfo.address);
  });
  sock.bind(port, ip, () => console.log(`stun-probe server on ${ip}:${port}`));
} else if (mode === 'client') {
  const port = Number(opt('--port', 0));
  const listen = Number(opt('--listen', 0));
  const tries = Number(opt('--tries', 3));
  const sock = dgram.createSocket('udp4');
  const mapped = {};
  const received = [];
  const pending = new Map(); // transaction id (hex) -> resolve
  sock.on('message', (msg, rinfo) => {
    if (isStun(msg)) {
      const done = pending.get(msg.subarray(8, 20).toString('hex'));
      if (done) done(xorMapped(msg));
    } else {
      received.push({ from: `${rinfo.address}:${rinfo.port}`, text: msg.toString() });
    }
  });
  await new Promise((resolve) => sock.bind(port, resolve));
  for (const target of rest) {
    const [ip, p] = split(target);
    mapped[target] = null;
    for (let attempt = 0; attempt < tries && !mapped[target]; attempt++) {
      const req = request();
      mapped[target] = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(null), 700);
        pending.set(req.subarray(8, 20).toString('hex'), (value) => {
          clearTimeout(timer);
          resolve(value);
        });
        sock.send(req, p, ip);
      });
    }
  }
  if (listen) {
    // Tell a waiting script which local port this is, then listen.
    console.error(`listening ${sock.address().port}`);
    await new Promise((resolve) => setTimeout(resolve, listen));
  }
  console.log(JSON.stringify({ local: sock.address().port, mapped, received }));
  sock.close();
} else if (mode === 'send') {
  const from = Number(opt('--from-port', 0));
  const [target, text = 'unsolicited'] = rest;
  const [ip, p] = split(target);
  const sock = dgram.createSocket('udp4');
  await new Promise((resolve) => sock.bind(from, resolve));
  await new Promise((resolve, reject) => sock.send(Buffer.from(text), p, ip, (err) => (err ? reject(err) : resolve())));
  sock.close();
} else {
  console.error('usage: stun-probe.mjs server IP:PORT | client [--port P] [--listen MS] IP:PORT... | send --from-port P IP:PORT [TEXT]');
  process.exit(2);
}
