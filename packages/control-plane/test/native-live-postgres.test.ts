// Every native /v1 route end to end against `wrenn up` on a throwaway PostgreSQL server.
import { defineNativeSuite } from './native-suite.js';

defineNativeSuite('postgres', 5);
