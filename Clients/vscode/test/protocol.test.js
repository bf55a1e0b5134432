'use strict';
// The VS Code extension's protocol module against the real daemon (SmolLM2 test model).
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { DaemonConnection, EventFormatter } = require('../protocol');

const binary = process.env.SELFANCHOR_BIN || path.join(__dirname, '..', '..', '..', '.build', 'debug', 'selfanchor');
const QUESTION = 'A farmer has 12 cows and buys 7 more. How many cows does he have?';

test('solve streams plans and steps and resolves with the result', async () => {
  const conn = new DaemonConnection({ binary, model: 'test' });
  try {
    const info = await conn.initialize();
    assert.strictEqual(info.model.name, 'test');
    const events = [];
    let output = '';
    const formatter = new EventFormatter((text) => { output += text; });
    const result = await conn.solve(QUESTION, { options: { maxTokens: 80, maxSteps: 2 } }, (event) => {
      events.push(event.event);
      formatter.handle(event);
    }).promise;
    assert.strictEqual(events[0], 'start');
    assert.ok(events.includes('plan') && events.includes('reason'));
    assert.strictEqual(result.strategy, 'self-anchor');
    assert.match(output, /Plan 1: .+\n(Plan \d+: .+\n)*Step 1: /);
  } finally {
    assert.strictEqual(await conn.close(), 0);
  }
});

test('cancel stops a running solve with -32800 and the partial result', async () => {
  const conn = new DaemonConnection({ binary, model: 'test' });
  try {
    await conn.initialize();
    let cancelled = false;
    const running = conn.solve(QUESTION, { strategy: 'cot', options: { maxTokens: 3000, temperature: 4, seed: 2 } }, () => {
      if (!cancelled) { cancelled = true; conn.cancel(running.id); }
    });
    await assert.rejects(running.promise, (error) => {
      assert.strictEqual(error.code, -32800);
      assert.strictEqual(error.data.partial.timings.stop_reason, 'cancelled');
      return true;
    });
    const status = await conn.request('server/status');
    assert.deepStrictEqual(status.inFlight, []);
  } finally {
    await conn.close();
  }
});

test('invalid params are rejected with the field named', async () => {
  const conn = new DaemonConnection({ binary, model: 'test' });
  try {
    await conn.initialize();
    await assert.rejects(conn.request('solve', { question: QUESTION, options: { maxTokens: -1 } }),
      (error) => error.code === -32602 && error.data.field === 'params.options.maxTokens');
  } finally {
    await conn.close();
  }
});
