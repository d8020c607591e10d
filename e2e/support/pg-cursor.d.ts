// The part of pg-cursor's API the e2e tests use (the package ships no types; @types/pg-cursor would
// add a dependency for these few lines).
declare module 'pg-cursor' {
  export default class Cursor<R = Record<string, unknown>> implements import('pg').Submittable {
    constructor(text: string, values?: unknown[], config?: { rowMode?: 'array' });
    submit(connection: import('pg').Connection): void;
    read(rows: number): Promise<R[]>;
    close(): Promise<void>;
  }
}
