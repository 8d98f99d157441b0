// @wrenn/cli: the `wrenn` command (bin/wrenn.js), and `wrenn up` for embedding the whole system on
// one machine in another program.

export { type RunningUp, startUp, type UpOptions } from './up.js';
