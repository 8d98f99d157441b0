// Every native /v1 route end to end against `wrenn up` on the embedded SQLite database.
import { defineNativeSuite } from './native-suite.js';

defineNativeSuite('sqlite', 4);
