// GET /health, POST /init, GET /envs: the small part of envd's REST surface.

import { tokenMatches } from '../auth.js';
import type { EnvdState } from '../state.js';
import { HttpError, readBody, sendEmpty, sendJson } from './respond.js';
import { headerValue, type Route } from './router.js';

interface InitBody {
  envVars?: Record<string, string>;
  accessToken?: string;
  defaultUser?: string;
  defaultWorkdir?: string;
  timestamp?: string;
  hyperloopIP?: string;
}

export function basicRoutes(state: EnvdState): Route[] {
  return [
    {
      method: 'GET',
      path: '/health',
      public: true,
      handler: (_req, res) => {
        res.setHeader('x-envd-version', state.version);
        sendEmpty(res, 204);
      },
    },
    {
      method: 'POST',
      path: '/init',
      // /init may set the first token; changing an existing one needs the old one.
      selfAuth: true,
      handler: async (req, res) => {
        if (state.accessToken && !tokenMatches(state, headerValue(req, 'x-access-token'))) {
          throw new HttpError(401, 'changing the access token needs the current X-Access-Token');
        }
        const raw = await readBody(req);
        let body: InitBody = {};
        if (raw.length > 0) {
          try {
            body = JSON.parse(raw.toString('utf8')) as InitBody;
          } catch {
            throw new HttpError(400, 'body is not valid JSON');
          }
        }
        if (typeof body !== 'object' || body === null) throw new HttpError(400, 'body must be a JSON object');
        if (body.envVars !== undefined) {
          if (typeof body.envVars !== 'object' || body.envVars === null)
            throw new HttpError(400, 'envVars must be an object of strings');
          for (const [k, v] of Object.entries(body.envVars)) {
            if (typeof v !== 'string') throw new HttpError(400, `envVars.${k} must be a string`);
          }
          Object.assign(state.envVars, body.envVars);
        }
        if (body.accessToken !== undefined) {
          if (typeof body.accessToken !== 'string') throw new HttpError(400, 'accessToken must be a string');
          state.accessToken = body.accessToken || undefined;
        }
        if (body.defaultUser) state.defaultUser = String(body.defaultUser);
        if (body.defaultWorkdir) state.defaultWorkdir = String(body.defaultWorkdir);
        if (body.timestamp) {
          // Clock sync after a resume: only envd as root inside a VM may set the clock; elsewhere it is the host's.
          const t = Date.parse(body.timestamp);
          if (Number.isNaN(t)) throw new HttpError(400, 'timestamp must be an RFC 3339 time');
        }
        res.setHeader('cache-control', 'no-store');
        sendEmpty(res, 204);
      },
    },
    {
      method: 'GET',
      path: '/envs',
      handler: (_req, res) => sendJson(res, 200, state.envVars),
    },
  ];
}
