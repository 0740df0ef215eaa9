/**
 * BGP well-known communities by name, as policies write them and the wire
 * carries them: the one table the policy parser (which names it accepts)
 * and the BGP codec (what each name encodes to) share.
 */
/** Well-known communities by name (RFC 1997 and later). */
export const WellKnownCommunity: Readonly<Record<string, number>> = {
  // IANA "BGP Well-known Communities" registry.
  'internet': 0x00000000,
  'planned-shut': 0xffff0000,
  'accept-own': 0xffff0001,
  'route-filter-translated-v4': 0xffff0002,
  'route-filter-v4': 0xffff0003,
  'route-filter-translated-v6': 0xffff0004,
  'route-filter-v6': 0xffff0005,
  'llgr-stale': 0xffff0006,
  'no-llgr': 0xffff0007,
  'blackhole': 0xffff029a, // RFC 7999
  'no-export': 0xffffff01,
  'no-advertise': 0xffffff02,
  'no-export-subconfed': 0xffffff03,
  'no-peer': 0xffffff04, // RFC 3765
};

export const WELL_KNOWN_COMMUNITY_NAMES: readonly string[] = Object.keys(WellKnownCommunity);
