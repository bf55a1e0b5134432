'use strict';
// The selfanchor daemon over stdio with LSP Content-Length framing. Node's standard library only.
const { spawn } = require('node:child_process');
const { EventEmitter } = require('node:events');

class SelfAnchorError extends Error {
  constructor(error) {
    super(error.message);
    this.code = error.code;
    this.data = error.data;
  }
  get cancelled() { return this.code === -32800; }
}

/** One daemon process: requests resolve with their result; `onEvent` sees the streamed events. */
class DaemonConnection extends EventEmitter {
  constructor({ binary = 'selfanchor', model = 'default', args = [] } = {}) {
    super();
    this.child = spawn(binary, ['serve', '--framing', 'lsp', '--model', model, ...args], { stdio: ['pipe', 'pipe', 'ignore'] });
    this.nextId = 1;
    this.pending = new Map();
    this.buffer = Buffer.alloc(0);
    this.child.stdout.on('data', (chunk) => this.receive(chunk));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => {
      for (const { reject } of this.pending.values()) reject(new Error('the daemon exited'));
      this.pending.clear();
      resolve(code);
    }));
  }

  async initialize() {
    const result = await this.request('initialize', { processId: process.pid, clientInfo: { name: 'vscode-selfanchor' } });
    this.notify('initialized', {});
    return result;
  }

  receive(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const headerEnd = this.buffer.indexOf('\r\n\r\n');
      if (headerEnd < 0) return;
      const header = this.buffer.subarray(0, headerEnd).toString('ascii');
      const match = /content-length:\s*(\d+)/i.exec(header);
      if (!match) throw new Error(`bad header from the daemon: ${header}`);
      const length = Number(match[1]);
      if (this.buffer.length < headerEnd + 4 + length) return;
      const body = this.buffer.subarray(headerEnd + 4, headerEnd + 4 + length).toString('utf8');
      this.buffer = this.buffer.subarray(headerEnd + 4 + length);
      this.dispatch(JSON.parse(body));
    }
  }

  dispatch(message) {
    if (message.method === 'selfanchor/event') {
      const entry = this.pending.get(message.params.id);
      if (entry && entry.onEvent) entry.onEvent(message.params.event);
    } else if (message.method) {
      this.emit('notification', message);
    } else if (this.pending.has(message.id)) {
      const { resolve, reject } = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.error) reject(new SelfAnchorError(message.error)); else resolve(message.result);
    }
  }

  send(message) {
    const body = Buffer.from(JSON.stringify(message), 'utf8');
    this.child.stdin.write(Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]));
  }

  notify(method, params) { this.send({ jsonrpc: '2.0', method, params }); }

  /** Sends a request; returns { id, promise }. */
  start(method, params, onEvent) {
    const id = this.nextId++;
    const promise = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject, onEvent }));
    this.send({ jsonrpc: '2.0', id, method, params });
    return { id, promise };
  }

  request(method, params, onEvent) { return this.start(method, params, onEvent).promise; }

  cancel(id) { this.notify('$/cancelRequest', { id }); }

  /** Solve with streaming: `onEvent(event)` per event; resolves with the result. */
  solve(question, { strategy = 'self-anchor', task, options = {} } = {}, onEvent) {
    const params = { question, strategy, options, stream: Boolean(onEvent) };
    if (task) params.task = task;
    return this.start('solve', params, onEvent);
  }

  async close() {
    if (this.child.exitCode === null) {
      try { await this.request('shutdown'); this.notify('exit'); } catch (_) { /* already gone */ }
      this.child.stdin.end();
    }
    return this.exited;
  }
}

/** Renders events as the lines an output channel shows. */
class EventFormatter {
  constructor(write) { this.write = write; this.section = null; }
  handle(event) {
    if (event.event.endsWith('_delta')) {
      const section = event.event.slice(0, -'_delta'.length);
      const key = `${section}:${event.index}`;
      if (key !== this.section) {
        if (this.section !== null) this.write('\n');
        this.section = key;
        const label = { plan: `Plan ${event.index}: `, reason: `Step ${event.index}: `, answer: 'Answer: ', text: '' }[section];
        this.write(label);
      }
      this.write(event.text);
    } else if (event.event === 'answer') {
      if (this.section !== null) this.write('\n');
      this.section = null;
      this.write(`⇒ ${event.extracted === null ? '(no answer found)' : event.extracted}\n`);
    } else if (event.event === 'end') {
      const t = event.timings;
      this.write(`(${t.predicted_n} tokens, ${t.predicted_per_second.toFixed(1)} tokens/s)\n`);
    }
  }
}

module.exports = { DaemonConnection, EventFormatter, SelfAnchorError };
