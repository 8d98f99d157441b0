// The official e2b SDK against `wrenn up` on the embedded SQLite database.
import { defineE2bSuite } from './e2b-suite.js';

defineE2bSuite('sqlite', 0);
