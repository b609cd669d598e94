import { describe, expect, it } from 'vitest';
import { SseParser, readEventStream, type SseMessage } from '../../src/api/sse.js';

describe('SseParser', () => {
  it('reads messages split anywhere, with CRLF, comments, ids and retry', () => {
    const text =
      'retry: 2000\r\n\r\n: ping\r\n\r\nid: 1\r\ndata: {"a":1}\r\n\r\nevent: x\ndata: line1\ndata: line2\n\nid: 3\rdata: z\r\r';
    // Every split point gives the same messages.
    for (let cut = 0; cut <= text.length; cut++) {
      const p = new SseParser();
      const got = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut)), ...p.end()];
      expect(got).toEqual([
        { event: 'message', data: '{"a":1}', id: '1' },
        { event: 'x', data: 'line1\nline2', id: '1' },
        { event: 'message', data: 'z', id: '3' },
      ]);
      expect(p.retryMs).toBe(2000);
    }
  });

  it('reads a fetch-style stream whose chunks split a multi-byte character', async () => {
    const bytes = new TextEncoder().encode('data: {"name":"Kigalé"}\n\n');
    const at = bytes.indexOf(0xc3) + 1;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(bytes.slice(0, at));
        c.enqueue(bytes.slice(at));
        c.close();
      },
    });
    const got: SseMessage[] = [];
    await readEventStream(body, new SseParser(), (m) => got.push(m));
    expect(got).toEqual([{ event: 'message', data: '{"name":"Kigalé"}', id: null }]);
  });
});
