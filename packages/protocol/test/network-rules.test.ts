// The egress policy contract: which allowOut/denyOut entries and rules pass, how they are
// normalised, and how a domain pattern matches a host name.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ALL_TRAFFIC,
  domainMatches,
  egressPolicyProblem,
  NETWORK_LIMITS,
  normaliseDenyOut,
  parseEgressEntry,
  splitAllowOut,
} from '../src/contract/network.js';

test('allowOut takes CIDRs, bare addresses, domains and *.domain; denyOut CIDRs and the all-traffic selector', () => {
  assert.deepEqual(splitAllowOut(['1.1.1.1', '10.0.0.0/8', 'Example.COM.', '*.api.example.com', '1.1.1.1/32']), {
    cidrs: ['1.1.1.1/32', '10.0.0.0/8'],
    domains: ['example.com', '*.api.example.com'],
  });
  assert.deepEqual(normaliseDenyOut([ALL_TRAFFIC, '8.8.8.8', '8.8.8.8/32']), ['0.0.0.0/0', '8.8.8.8/32']);
  assert.equal(egressPolicyProblem({ allowOut: ['a.b', '*.b.c'], denyOut: [ALL_TRAFFIC] }), undefined);
});

test('bad entries are refused with the field and the entry named', () => {
  const cases: Array<[Parameters<typeof egressPolicyProblem>[0], RegExp]> = [
    [{ allowOut: ['10.0.0.1/8'] }, /network\.allow_out: .*host bits set: did you mean 10\.0\.0\.0\/8/],
    [{ allowOut: ['300.1.1.1'] }, /network\.allow_out: "300\.1\.1\.1" is not an IPv4 CIDR/],
    [{ allowOut: ['com'] }, /"com" is not a domain/],
    [{ allowOut: ['*.com'] }, /"\*\.com" is not a domain/],
    [{ allowOut: ['a.*.com'] }, /not a domain/],
    [{ allowOut: ['exa mple.com'] }, /not a domain/],
    [{ allowOut: ['::1'] }, /IPv6/],
    [{ allowOut: [`${'a'.repeat(64)}.com`] }, /not a domain/],
    [{ allowOut: 'x' as unknown as string[] }, /network\.allow_out must be a list/],
    [{ allowOut: [1 as unknown as string] }, /entries must be strings/],
    [{ denyOut: ['example.com'] }, /network\.deny_out: .*takes no domain names/],
    [{ denyOut: Array(NETWORK_LIMITS.maxDenyOut + 1).fill('1.1.1.1') }, /at most 64/],
    [{ rules: { 'x.com': [{ transform: { headers: { 'Bad Name': 'v' } } }] } }, /not a header name/],
    [{ rules: { 'x.com': [{ transform: { headers: { a: 'v\r\nInjected: 1' } } }] } }, /without CR, LF or NUL/],
    [{ rules: { 'x.com': [{ transform: { headers: { 'Content-Length': '1' } } }] } }, /cannot be set by a rule/],
    [{ rules: { 'x.com': [{ transform: { body: 'x' } as never }] } }, /unknown field 'body'/],
    [{ rules: { 'not a domain': [] } }, /network\.rules: .*not a domain/],
    [{ rules: [] as never }, /must be an object/],
  ];
  for (const [policy, re] of cases) assert.match(egressPolicyProblem(policy) ?? 'accepted', re, JSON.stringify(policy));
});

test('domain patterns: exact names, and *.domain for every name below it (not the domain itself)', () => {
  assert.equal(domainMatches('example.com', 'EXAMPLE.com.'), true);
  assert.equal(domainMatches('example.com', 'www.example.com'), false);
  assert.equal(domainMatches('*.example.com', 'www.example.com'), true);
  assert.equal(domainMatches('*.example.com', 'a.b.example.com'), true);
  assert.equal(domainMatches('*.example.com', 'example.com'), false);
  assert.equal(domainMatches('*.example.com', 'badexample.com'), false);
  assert.deepEqual(parseEgressEntry('*.Example.com', true), { kind: 'domain', domain: 'example.com', wildcard: true });
});
