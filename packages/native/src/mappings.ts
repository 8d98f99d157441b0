// The memory description Firecracker sends with the userfaultfd: a JSON array of
// { base_host_virt_addr, size, offset, page_size } (older releases: page_size_kib).
export interface GuestRegionMapping {
  base: number;
  size: number;
  offset: number;
  pageSize: number;
}

export function parseFirecrackerMappings(body: string): GuestRegionMapping[] {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    throw new Error(`the VMM's memory mappings are not JSON: ${body.slice(0, 200)}`);
  }
  if (!Array.isArray(raw) || raw.length === 0)
    throw new Error(`expected a non-empty JSON array of memory regions, got ${body.slice(0, 200)}`);
  return raw.map((r: Record<string, unknown>, i) => {
    const pageSize =
      typeof r.page_size === 'number'
        ? r.page_size
        : typeof r.page_size_kib === 'number'
          ? r.page_size_kib * 1024
          : NaN;
    const m = { base: Number(r.base_host_virt_addr), size: Number(r.size), offset: Number(r.offset), pageSize };
    for (const [k, v] of Object.entries(m)) {
      if (!Number.isSafeInteger(v) || v < 0)
        throw new Error(`memory region ${i}: ${k} is missing or invalid in ${JSON.stringify(r)}`);
    }
    if (m.pageSize === 0 || (m.pageSize & (m.pageSize - 1)) !== 0)
      throw new Error(`memory region ${i}: page size ${m.pageSize} is not a power of two`);
    if (m.base % m.pageSize !== 0) throw new Error(`memory region ${i}: base is not page aligned`);
    return m;
  });
}

export function toFirecrackerMappings(regions: GuestRegionMapping[]): string {
  return JSON.stringify(
    regions.map((r) => ({ base_host_virt_addr: r.base, size: r.size, offset: r.offset, page_size: r.pageSize })),
  );
}
