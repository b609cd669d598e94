/*
 * A Server-Sent Events reader over fetch streams, for Node (which has no EventSource) and for
 * browsers alike: the admin HTTP client's event stream. Browser-safe: no Node imports.
 */

export interface SseMessage {
  /** the `event:` field, 'message' when absent */
  event: string;
  data: string;
  id: string | null;
}

/**
 * Incremental parser (WHATWG HTML, "Interpreting an event stream"): feed it text as it arrives,
 * get back the messages each piece completes. Comments (`: ping`) and empty messages are
 * skipped; `retry:` updates `retryMs`.
 */
export class SseParser {
  retryMs: number | null = null;
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private id: string | null = null;

  push(text: string): SseMessage[] {
    this.buffer += text;
    const out: SseMessage[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      // A lone CR at the end may be the first half of a CRLF: wait for more.
      if (!m || (m[0] === '\r' && m.index === this.buffer.length - 1)) break;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      const message = this.line(line);
      if (message) out.push(message);
    }
    return out;
  }

  /** The stream ended: a CR held back as a possible CRLF ends its line after all. */
  end(): SseMessage[] {
    if (!this.buffer.endsWith('\r')) return [];
    this.buffer = this.buffer.slice(0, -1) + '\n';
    return this.push('');
  }

  private line(line: string): SseMessage | null {
    if (line === '') {
      if (!this.data.length) {
        this.event = '';
        return null;
      }
      const message = { event: this.event || 'message', data: this.data.join('\n'), id: this.id };
      this.data = [];
      this.event = '';
      return message;
    }
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
    return null;
  }
}

/**
 * Reads one event stream to its end, calling onMessage for each message. Resolves when the
 * server ends the stream or the signal aborts; rejects when the connection breaks.
 */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  parser: SseParser,
  onMessage: (m: SseMessage) => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const m of parser.push(decoder.decode(value, { stream: true }))) onMessage(m);
    }
    for (const m of parser.push(decoder.decode())) onMessage(m);
    for (const m of parser.end()) onMessage(m);
  } finally {
    reader.releaseLock();
  }
}
