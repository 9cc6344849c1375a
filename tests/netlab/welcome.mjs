// node --experimental-websocket welcome.mjs WS_URL ROOM: joins ROOM on a signaling server,
// prints its `welcome` frame as one JSON line and leaves (the tests check `ice_servers`).
const [url, room = `welcome-${process.pid}`] = process.argv.slice(2);
const ws = new WebSocket(url);
const timer = setTimeout(() => {
  console.error('no welcome within 5 s');
  process.exit(1);
}, 5000);
ws.onopen = () => ws.send(JSON.stringify({ type: 'join', room, name: 'netlab-probe', version: 1 }));
ws.onmessage = ({ data }) => {
  const frame = JSON.parse(data);
  if (frame.type !== 'welcome' && frame.type !== 'error') return;
  console.log(JSON.stringify(frame));
  clearTimeout(timer);
  if (frame.type === 'welcome') ws.send(JSON.stringify({ type: 'leave' }));
  ws.close();
  process.exitCode = frame.type === 'welcome' ? 0 : 1;
};
ws.onerror = (e) => {
  console.error(`websocket error: ${e.message ?? e.type}`);
  process.exit(1);
};
