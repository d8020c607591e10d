// Builds raw typed protocol messages for the codec tests (frontend and backend share the layout).

/** A typed message: code letter, Int32 length (itself included), body. */
export function typedMessage(code: string, body: Buffer | string = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const m = Buffer.alloc(5 + b.length);
  m[0] = code.charCodeAt(0);
  m.writeInt32BE(4 + b.length, 1);
  b.copy(m, 5);
  return m;
}
