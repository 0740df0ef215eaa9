/**
 * Who defines each object in a manifests directory: for every identity
 * (`Kind/namespace/name`), the (file, document) places that define it, in
 * the order that decides the winner — file name, then document, as
 * combineOutcomes does for the whole directory. Kept up to date file by
 * file, so a scan that re-read one file decides again only the objects that
 * file had or has. Pure: no I/O.
 */
import { whoOf, type FileOutcome, type FileRecord, type ManifestProblem } from './interpret.js';

interface Place {
  file: string;
  record: FileRecord;
}

function before(a: Place, b: Place): number {
  return a.file < b.file ? -1 : a.file > b.file ? 1 : a.record.document - b.record.document || (a.record.item ?? -1) - (b.record.item ?? -1);
}

export class DefinitionIndex {
  private readonly places = new Map<string, Place[]>();
  private readonly identitiesOf = new Map<string, Set<string>>();

  /** Objects in force (identities with at least one definition). */
  get size(): number {
    return this.places.size;
  }

  /** The file's definitions are now `records` (none: the file is gone). */
  replaceFile(file: string, records: readonly FileRecord[]): void {
    for (const identity of this.identitiesOf.get(file) ?? []) {
      const list = this.places.get(identity)?.filter((p) => p.file !== file);
      if (list && list.length > 0) this.places.set(identity, list);
      else this.places.delete(identity);
    }
    const mine = new Set<string>();
    for (const record of records) {
      mine.add(record.identity);
      const place = { file, record };
      const list = this.places.get(record.identity);
      // Nearly every identity has one place: an exact one-element array, not push's spare capacity (10,000s of them).
      if (list === undefined) this.places.set(record.identity, [place]);
      else {
        list.push(place);
        list.sort(before);
      }
    }
    if (mine.size > 0) this.identitiesOf.set(file, mine);
    else this.identitiesOf.delete(file);
  }

  /** The definition in force for an identity, if any. */
  winner(identity: string): Place | undefined {
    return this.places.get(identity)?.[0];
  }

  /** Every definition that loses to an earlier one, reported where it stands, by file. */
  duplicatesByFile(): Map<string, ManifestProblem[]> {
    const out = new Map<string, ManifestProblem[]>();
    for (const list of this.places.values()) {
      if (list.length < 2) continue;
      const winner = list[0]!;
      for (const loser of list.slice(1)) {
        const problems = out.get(loser.file) ?? [];
        problems.push({
          severity: 'error',
          file: loser.file,
          document: loser.record.document,
          ...(loser.record.item !== undefined ? { item: loser.record.item } : {}),
          ...whoOf(loser.record.object, loser.record.rawKind),
          message: `duplicate: also defined in ${winner.file} doc ${winner.record.document}, which wins; this one is ignored`,
        });
        out.set(loser.file, problems);
      }
    }
    for (const problems of out.values()) problems.sort((a, b) => (a.document ?? 0) - (b.document ?? 0) || (a.item ?? -1) - (b.item ?? -1));
    return out;
  }
}

/** The index of a whole directory's outcomes. */
export function indexOutcomes(outcomes: ReadonlyMap<string, FileOutcome>): DefinitionIndex {
  const index = new DefinitionIndex();
  for (const [file, outcome] of outcomes) index.replaceFile(file, outcome.records);
  return index;
}
