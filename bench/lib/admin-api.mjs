// The admin's calls to a stack's HTTP API, one helper for every bench: in-process stacks
// (bench-stack.mjs, which re-exports these) and stacks in a process of their own (density,
// idle-exec), whose driver must not load the stack's code just to make HTTP calls.
// `stack` is anything with `url` and `adminKey` (startUp's result, spawnDensityStack's).

/**
 * (method, path, body) → { json, ms }: the parsed body (null when empty) and the call's latency.
 * Unless 2xx it throws an Error naming the call, with `status`, `code` (the API's error code when
 * the body has one) and `ms`. `path` is from the root: /v1/..., /sandboxes.
 */
export function timedAdminApi(stack) {
  return async (method, path, body) => {
    const t0 = performance.now();
    const res = await fetch(`${stack.url}${path}`, {
      method,
      headers: { 'x-api-key': stack.adminKey, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    const ms = performance.now() - t0;
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      if (res.ok) throw new Error(`${method} ${path}: ${res.status} but not JSON: ${text.slice(0, 300)}`);
    }
    if (res.status < 200 || res.status > 299) {
      const err = new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
      Object.assign(err, { status: res.status, code: json?.error?.code ?? json?.code ?? null, ms });
      throw err;
    }
    return { json, ms };
  };
}

/** (method, path, body) → the parsed JSON (null when empty); throws as timedAdminApi does. */
export function adminApi(stack) {
  const call = timedAdminApi(stack);
  return async (method, path, body) => (await call(method, path, body)).json;
}
