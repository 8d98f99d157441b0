// The official e2b SDK against `wrenn up` on PostgreSQL (a throwaway server, see pg.ts).
import { defineE2bSuite } from './e2b-suite.js';

defineE2bSuite('postgres', 1);
