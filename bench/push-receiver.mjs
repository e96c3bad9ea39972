// The receiver of bench/push.mjs: node:http, keep-alive, answers each push 204 (after
// RECEIVER_DELAY_MS) without verifying it, so that the cost measured is callstate's. It runs
// in bench/push.mjs's own process, or with RECEIVER_PROCESSES=N in N node:cluster workers
// sharing one port: then each worker sends the primary its arrivals every few ms, stamped on
// the wall clock (performance.timeOrigin + now), and its port is RECEIVER_PORT.
import http from 'node:http';
import cluster from 'node:cluster';

// A request handler calling arrived(webhook-id, performance.now(), callIdOf) once per push,
// where callIdOf() is the call id of a call.ringing event and null for any other event.
export function receiverHandler(delayMs, arrived) {
  return (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      arrived(req.headers['webhook-id'], performance.now(), () => {
        const body = Buffer.concat(chunks).toString('utf8');
        return body.includes('"call.ringing"') ? JSON.parse(body).call_id : null;
      });
      if (delayMs > 0) setTimeout(() => res.writeHead(204).end(), delayMs);
      else res.writeHead(204).end();
    });
  };
}

if (cluster.isWorker) {
  let batch = [];
  const handler = receiverHandler(Number(process.env.RECEIVER_DELAY_MS || 0), (id, at, callIdOf) => {
    batch.push([id, performance.timeOrigin + at, callIdOf()]);
  });
  setInterval(() => {
    if (batch.length) process.send(batch);
    batch = [];
  }, 5);
  http.createServer({ keepAliveTimeout: 60000 }, handler)
    .listen(Number(process.env.RECEIVER_PORT), '127.0.0.1', () => process.send('listening'));
}
