/** The logger shape the runtime needs: a subset of pino's (`log.info({ key }, 'msg')`). */
export interface RuntimeLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** A logger that drops everything (the default). */
export const silentLogger: RuntimeLogger = { info() {}, warn() {}, error() {}, debug() {} };
