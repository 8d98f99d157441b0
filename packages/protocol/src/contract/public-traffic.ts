// Who may reach a capsule's ports through the sandbox proxy, and which Host its servers see (E2B's
// `network.allowPublicTraffic` and `network.maskRequestHost`). With public traffic off, the create
// answer carries a traffic access token and the proxy refuses requests to the capsule's ports
// (envd's excepted: it has its own access token) that do not send it in this header.

export const TRAFFIC_ACCESS_TOKEN_HEADER = 'e2b-traffic-access-token';

/** Replaced by the port the request is for, in maskRequestHost. */
export const MASK_PORT_PLACEHOLDER = '${PORT}';

/** What a capsule's public-traffic settings hold (the `network` object of a create). */
export interface PublicTrafficSettings {
  /** false: only requests with the capsule's traffic access token reach its ports (default true). */
  allowPublicTraffic?: boolean;
  /** The Host header the capsule's servers see; `${PORT}` becomes the requested port. */
  maskRequestHost?: string;
}

const MAX_MASK_LENGTH = 255;
// A host name or address with an optional port, where ${PORT} may stand for any digits.
const MASK_RE = /^[A-Za-z0-9._\-[\]:]+$/;

export function maskRequestHostProblem(mask: unknown, field = 'network.mask_request_host'): string | undefined {
  if (mask === undefined || mask === null) return undefined;
  if (typeof mask !== 'string' || mask.length === 0 || mask.length > MAX_MASK_LENGTH)
    return `${field} must be a host name of 1 to ${MAX_MASK_LENGTH} characters`;
  if (!MASK_RE.test(mask.split(MASK_PORT_PLACEHOLDER).join('0')))
    return `${field} "${mask}" is not a host name (letters, digits, . - _ : [ ] and ${MASK_PORT_PLACEHOLDER})`;
  return undefined;
}

/** The Host a capsule's server sees for a request to `port` under this mask. */
export function maskedHost(mask: string, port: number): string {
  return mask.split(MASK_PORT_PLACEHOLDER).join(String(port));
}
