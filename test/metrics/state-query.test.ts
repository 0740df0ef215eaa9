/**
 * GET /v1/state at scale: sections and pages (state-view.ts). A list is
 * walked page by page with `continue` tokens and every entry comes once;
 * bad parameters are named.
 */
import t from 'tap';
import { continueToken, pageOf, parseStateQuery, STATE_SECTIONS, StateQueryError } from '../../src/metrics/state-view.js';

t.test('sections default to all; a subset is kept; an unknown one is named', async (t) => {
  t.same([...parseStateQuery(new URLSearchParams('')).sections], [...STATE_SECTIONS]);
  t.same([...parseStateQuery(new URLSearchParams('sections=pools,bgp')).sections], ['pools', 'bgp']);
  t.same([...parseStateQuery(new URLSearchParams('sections=')).sections], [...STATE_SECTIONS], 'an empty list means all');
  t.throws(() => parseStateQuery(new URLSearchParams('sections=pools,nope')), { constructor: StateQueryError, message: /sections: unknown section "nope"/ });
  t.throws(() => parseStateQuery(new URLSearchParams('limit=0')), /limit: "0" must be an integer from 1 to 10000/);
  t.throws(() => parseStateQuery(new URLSearchParams('limit=abc')), /limit/);
  t.throws(() => parseStateQuery(new URLSearchParams('continue=garbage')), /continue: not a token/);
  t.throws(() => parseStateQuery(new URLSearchParams(`continue=${continueToken('pools', 'x')}`)), /continue/, 'pools are not paged');
});

t.test('a list of 25,000 walked in pages of 1,000 gives every entry once, in order', async (t) => {
  const keys = Array.from({ length: 25_000 }, (_, i) => `ns/svc-${String(i).padStart(6, '0')}`);
  const seen: string[] = [];
  let q = parseStateQuery(new URLSearchParams('sections=services'));
  let pages = 0;
  for (;;) {
    const p = pageOf('services', keys, (k) => k, q);
    seen.push(...p.items);
    pages++;
    if (!p.next) break;
    q = parseStateQuery(new URLSearchParams({ continue: p.next }));
    t.same([...q.sections], ['services'], 'a continuation fills only its own section');
  }
  t.equal(pages, 25);
  t.same(seen, keys);
});

t.test('a page continues after its last key even when entries came and went meanwhile', async (t) => {
  const before = ['a', 'b', 'c', 'd', 'e'];
  const first = pageOf('frontends', before, (k) => k, parseStateQuery(new URLSearchParams('limit=2')));
  t.same(first.items, ['a', 'b']);
  const after = ['a', 'aa', 'c', 'd', 'e'];
  const second = pageOf('frontends', after, (k) => k, parseStateQuery(new URLSearchParams({ continue: first.next!, limit: '2' })));
  t.same(second.items, ['c', 'd'], 'b went away, aa came before the cursor: the walk goes on from b');
});
