// The error every invalid setting raises: `key` names where the value came from (a flag, an
// environment variable, or a key in the config file) so the operator knows what to fix.
export class ConfigError extends Error {
  constructor(readonly key: string, message: string) {
    super(`${key}: ${message}`);
    this.name = 'ConfigError';
  }
}
