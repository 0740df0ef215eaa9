/**
 * Manifests mode: a directory of YAML/JSON manifests, watched, applied into
 * the store. fs.watch (debounced) picks changes up within a second; a
 * periodic rescan is the safety net for what inotify misses (directories
 * swapped under a ConfigMap mount, network filesystems).
 *
 * What is good last time stays in force when a file or document goes bad
 * (see interpret.ts); that last-good set and the creation timestamps stamped
 * on objects that lack one are persisted under the state directory, so a
 * restart with a broken file still serves what was served, and pool ages
 * (which decide pool conflicts) do not change across restarts.
 */
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher, type Stats } from 'node:fs';
import { mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { Store } from '../../store/store.js';
import { writeFileAtomic } from '../../sinks/state-dir.js';
import { objectKey, type Kind, type ModelObject } from '../../model/types.js';
import { DefinitionIndex, indexOutcomes } from './definitions.js';
import {
  combineOutcomes,
  formatProblem,
  identityOf,
  interpretFile,
  type FileOutcome,
  type FileRecord,
  type ManifestProblem,
} from './interpret.js';

export { formatProblem, type ManifestProblem } from './interpret.js';

export interface ManifestsSourceOptions {
  directory: string;
  /** Where `manifests-state.json` lives (the agent's --state-dir). */
  stateDir: string;
  store: Store;
  /** Quiet time after a file event before rescanning. */
  debounceMs?: number;
  /** Safety-net rescan period. */
  rescanIntervalMs?: number;
  /** Bounds: files beyond these are reported, not read. */
  maxFiles?: number;
  maxFileBytes?: number;
  /** Bytes of all manifest files together; a file that would go past it is refused (name order decides). */
  maxTotalBytes?: number;
  now?: () => Date;
}

/** Why a file was not read (`refused` events, pharos_manifests_refused_total). */
export type RefusalReason = 'file_too_large' | 'total_too_large' | 'too_many_files';

export interface Refusal {
  file: string;
  reason: RefusalReason;
  /** The file's size (0 for too_many_files). */
  bytes: number;
  limit: number;
}

export const DEFAULT_MAX_FILE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_TOTAL_BYTES = 64 * 1024 * 1024;

export interface ScanReport {
  /** Manifest files considered. */
  files: number;
  /** Objects in force after the scan. */
  objects: number;
  errors: ManifestProblem[];
  warnings: ManifestProblem[];
  ignored: ManifestProblem[];
}

/** Under --state-dir: one record per manifest file, and the objects' creation timestamps. */
const STATE_DIRECTORY = 'manifests';
const CREATED_FILE = '.created.json';
/** The single-file state of earlier versions, read once and removed. */
const LEGACY_STATE_FILE = 'manifests-state.json';

function totalMessage(bytes: number, limit: number, budget: number): string {
  return `${bytes} bytes would take the directory past its ${limit}-byte total (--manifests-max-bytes; ${limit - Math.max(budget, 0)} bytes in the files before it)`;
}
const MANIFEST_NAME = /\.(ya?ml|json)$/i;

/** An object as last put in the store (its JSON is compared only when a re-read file brings a new instance). */
interface AppliedObject {
  object: ModelObject;
}

interface PersistedState {
  version: 1;
  directory: string;
  /** identity → RFC 3339 */
  creationTimestamps: Record<string, string>;
  /** file → what it last put in force */
  files: Record<string, FileRecord[]>;
}

export class ManifestsSource extends EventEmitter<{ error: [ManifestProblem]; report: [ScanReport]; refused: [Refusal] }> {
  private readonly directory: string;
  private readonly stateDirectory: string;
  private readonly legacyStatePath: string;
  private readonly store: Store;
  private readonly debounceMs: number;
  private readonly rescanIntervalMs: number;
  private readonly maxFiles: number;
  private readonly maxFileBytes: number;
  private readonly maxTotalBytes: number;
  /** Refusals of the previous scan (file, reason, size): a `refused` event fires only for new ones. */
  private refusedKeys = new Set<string>();
  private readonly now: () => Date;

  private outcomes = new Map<string, FileOutcome>();
  /** Per file: a digest of the text last interpreted (a rewrite with the same content is not parsed again). */
  private texts = new Map<string, string>();
  private readonly textBytes = new Map<string, number>();
  /** Per file: inode, size and times when last read (a file whose stat did not change is not read again). */
  private readonly fileStats = new Map<string, string>();
  private creationTimestamps = new Map<string, string>();
  /** Parsed object → its stamped copy, so an unchanged object stays the same reference. */
  private stamped = new WeakMap<ModelObject, ModelObject>();
  /** What this source last put in the store, per kind (references, for cheap diffs). */
  private readonly applied = new Map<Kind, Map<string, AppliedObject>>();
  /** Per file: the outcome last serialised and its JSON, so saving does not re-serialise unchanged files. */
  /** Per file: the outcome last written to its state file. */
  private readonly savedOutcomes = new Map<string, FileOutcome>();
  /** The creation timestamps as last written (undefined: never), and whether they changed since. */
  private savedCreated: string | undefined;
  private creationChanged = false;
  private legacyToRemove = false;
  /** Kinds this source has ever written; only these are replaced, so other writers' kinds are left alone. */
  private readonly ownedKinds = new Set<Kind>();
  /** Who defines each object, for scans that re-read a few files (built by the first full scan). */
  private index: DefinitionIndex | undefined;
  private reportKey = '';
  private errorKeys = new Set<string>();
  private current: ScanReport = { files: 0, objects: 0, errors: [], warnings: [], ignored: [] };

  private watcher: FSWatcher | undefined;
  private watchedInode: number | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private running: Promise<ScanReport> | undefined;
  private pending: Promise<ScanReport> | undefined;
  private stopped = true;

  constructor(options: ManifestsSourceOptions) {
    super();
    this.directory = options.directory;
    this.stateDirectory = join(options.stateDir, STATE_DIRECTORY);
    this.legacyStatePath = join(options.stateDir, LEGACY_STATE_FILE);
    this.store = options.store;
    this.debounceMs = options.debounceMs ?? 10;
    this.rescanIntervalMs = options.rescanIntervalMs ?? 2000;
    this.maxFiles = options.maxFiles ?? 10_000;
    this.maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    this.maxTotalBytes = options.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES;
    this.now = options.now ?? (() => new Date());
  }

  /** Loads persisted state, scans once (the store is marked synced when the directory was readable), then watches. */
  async start(): Promise<ScanReport> {
    this.stopped = false;
    await this.loadState();
    const report = await this.scanNow();
    this.rescanTimer = setInterval(() => void this.scanNow(), this.rescanIntervalMs);
    this.rescanTimer.unref();
    return report;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.closeWatcher();
    clearTimeout(this.debounceTimer);
    clearInterval(this.rescanTimer);
    await this.pending?.catch(() => undefined);
    await this.running?.catch(() => undefined);
  }

  /** The problems of the latest scan, errors first. */
  get problems(): ManifestProblem[] {
    return [...this.current.errors, ...this.current.warnings, ...this.current.ignored];
  }

  get errors(): ManifestProblem[] {
    return this.current.errors;
  }

  get lastReport(): ScanReport {
    return this.current;
  }

  /** Scans the whole directory now; scans never overlap (a request during a scan runs once after it). */
  scanNow(): Promise<ScanReport> {
    this.fullScanWanted = true;
    return this.requestScan();
  }

  /** Runs a scan of what was asked for since the last one: the files fs.watch named, or everything. */
  private requestScan(): Promise<ScanReport> {
    if (this.running) {
      this.pending ??= this.running.then(() => {
        this.pending = undefined;
        return this.requestScan();
      });
      return this.pending;
    }
    const targets = this.fullScanWanted || this.watchedNames.size === 0 ? undefined : this.watchedNames;
    this.fullScanWanted = false;
    this.watchedNames = new Set();
    this.running = this.scanOnce(targets)
      .catch((err: unknown) =>
        // Never an unhandled rejection from a timer-driven scan: the failure becomes a reported error.
        this.publish({ ...this.current, errors: [{ severity: 'error', file: '', message: `scan failed: ${(err as Error).message}` }] }),
      )
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private startWatching(): void {
    if (this.stopped || this.watcher) return;
    try {
      this.watcher = watch(this.directory, { persistent: false }, (_event, filename) => this.scheduleScan(filename));
      // The directory went away or was replaced: the periodic rescan re-establishes the watch.
      this.watcher.on('error', () => this.closeWatcher());
    } catch {
      this.watcher = undefined;
    }
  }

  private closeWatcher(): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.watchedInode = undefined;
  }

  /**
   * fs.watch names the file that changed: the scan after the debounce reads
   * only those (a stat of every file costs ~30 ms at 1,000 files). Names
   * that can never be a manifest (an editor's swap file, the temporary file
   * a tool writes before renaming it over a manifest: the rename names the
   * manifest too) are ignored. No name, or a ConfigMap mount's `..data`
   * swap, makes it a full scan; the periodic rescan is the safety net.
   */
  private scheduleScan(filename?: string | Buffer | null): void {
    if (this.stopped) return;
    const name = typeof filename === 'string' ? filename : undefined;
    if (name && !name.startsWith('.') && MANIFEST_NAME.test(name) && !name.includes('/')) this.watchedNames.add(name);
    else if (!name || name.startsWith('..')) this.fullScanWanted = true;
    else return;
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => void this.requestScan(), this.debounceMs);
    this.debounceTimer.unref();
  }

  private watchedNames = new Set<string>();
  /** Per file: why it was last refused unread, so a targeted scan carries other files' refusals over. */
  private readonly lastRefusal = new Map<string, Refusal>();
  private fullScanWanted = false;

  private async scanOnce(targets?: ReadonlySet<string>): Promise<ScanReport> {
    if (targets && this.index && this.store.synced) return this.scanTargets(targets);
    let names: string[];
    try {
      // A directory deleted and re-created (or a mount swapped) leaves inotify on the old inode: watch anew.
      const { ino } = await stat(this.directory);
      if (this.watchedInode !== undefined && ino !== this.watchedInode) this.closeWatcher();
      this.watchedInode = ino;
      if (!this.watcher) this.startWatching();
      const entries = await readdir(this.directory);
      // Hidden names skipped: editors' swap files, ConfigMap mounts' `..data` machinery.
      names = entries.filter((n) => !n.startsWith('.') && MANIFEST_NAME.test(n)).sort();
    } catch (err) {
      this.closeWatcher();
      // An unreadable directory keeps everything in force; tearing down every service is never the fix.
      const problem: ManifestProblem = {
        severity: 'error',
        file: '',
        message: `cannot read directory ${this.directory}: ${(err as Error).message}`,
        keptLastGood: this.outcomes.size > 0,
      };
      return this.publish({ ...this.current, errors: [problem] });
    }

    const extra: ManifestProblem[] = [];
    const refusals: Refusal[] = [];
    if (names.length > this.maxFiles) {
      for (const n of names.slice(this.maxFiles)) {
        extra.push({ severity: 'error', file: n, message: `not read: more than ${this.maxFiles} manifest files` });
        refusals.push({ file: n, reason: 'too_many_files', bytes: 0, limit: this.maxFiles });
      }
      names = names.slice(0, this.maxFiles);
    }

    // Every file's stat at once (a few at a time in the thread pool): one after the other, 1,000 files cost ~200 ms per scan.
    const stats = await statAll(this.directory, names);
    return this.interpretNames(names, stats, extra, refusals);
  }

  /** A scan of the files fs.watch named; the others are taken as they were (names in order, sizes known). */
  private async scanTargets(targets: ReadonlySet<string>): Promise<ScanReport> {
    // A file gone because the whole directory went (or was swapped) is not a deletion: the full scan decides.
    const dir = await stat(this.directory).catch(() => undefined);
    if (!dir || dir.ino !== this.watchedInode) return this.scanOnce();
    const present = new Set(this.outcomes.keys());
    const stats = await statAll(this.directory, [...targets]);
    for (const name of targets) {
      const st = stats.get(name)!;
      if (st instanceof Error && (st as NodeJS.ErrnoException).code === 'ENOENT') present.delete(name);
      else present.add(name);
    }
    const names = [...present].sort();
    if (names.length > this.maxFiles) return this.scanOnce(); // the bound is judged over the whole directory
    return this.interpretNames(names, stats, [], []);
  }

  /** Reads what `stats` covers (the rest is unchanged), interprets what changed, and applies it. */
  private async interpretNames(names: string[], stats: ReadonlyMap<string, Stats | Error>, extra: ManifestProblem[], refusals: Refusal[]): Promise<ScanReport> {
    const next = new Map<string, FileOutcome>();
    let total = 0;
    let changed = names.length !== this.outcomes.size || names.some((n) => !this.outcomes.has(n));
    for (const name of names) {
      const previous = this.outcomes.get(name);
      const statted = stats.get(name);
      const { text, error, refusal, unchanged } = statted === undefined
        ? { unchanged: true, refusal: this.lastRefusal.get(name) } as const
        : await this.readManifest(name, this.maxTotalBytes - total, statted);
      if (refusal) this.lastRefusal.set(name, refusal);
      else this.lastRefusal.delete(name);
      if (refusal) refusals.push(refusal);
      if (unchanged && previous) {
        total += this.textBytes.get(name) ?? 0;
        next.set(name, previous);
        continue;
      }
      if (text !== undefined) total += Buffer.byteLength(text);
      if (text !== undefined && previous && this.texts.get(name) === digest(text)) {
        next.set(name, previous);
        continue;
      }
      changed = true;
      next.set(name, interpretFile(name, text, previous, error));
      if (text !== undefined) {
        this.texts.set(name, digest(text));
        this.textBytes.set(name, Buffer.byteLength(text));
      } else {
        this.texts.delete(name);
        this.textBytes.delete(name);
        this.fileStats.delete(name);
      }
    }
    for (const name of this.texts.keys()) {
      if (next.has(name)) continue;
      this.texts.delete(name);
      this.textBytes.delete(name);
      this.fileStats.delete(name);
    }
    for (const name of this.lastRefusal.keys()) if (!next.has(name)) this.lastRefusal.delete(name);
    const before = this.outcomes;
    this.outcomes = next;
    const refusalsChanged = this.noteRefusals(refusals);
    // The periodic rescan of an unchanged directory stops here: a stat per file, nothing parsed, nothing compared.
    if (!changed && !refusalsChanged && extra.length === 0 && this.store.synced) return this.publish(this.current);

    // A few files changed: only their objects are looked at (an edit among 20,000 objects costs its file, not the directory).
    const changedFiles = new Set<string>();
    for (const [name, outcome] of next) if (before.get(name) !== outcome) changedFiles.add(name);
    for (const name of before.keys()) if (!next.has(name)) changedFiles.add(name);
    if (this.index && this.store.synced && !refusalsChanged && extra.length === 0 && changedFiles.size <= INCREMENTAL_MAX_FILES) {
      return this.applyChangedFiles(before, next, changedFiles, names.length);
    }

    const combined = combineOutcomes(next);
    const stamped = this.stamp(combined.byKind);
    const problems = [...combined.problems, ...extra];
    let objects = 0;
    for (const list of stamped.values()) objects += list.length;
    const report: ScanReport = {
      files: names.length,
      objects,
      errors: problems.filter((p) => p.severity === 'error'),
      warnings: problems.filter((p) => p.severity === 'warning'),
      ignored: problems.filter((p) => p.severity === 'ignored'),
    };
    // The report is current before the store changes, so a reader woken by the store sees matching errors.
    this.current = report;
    for (const kind of stamped.keys()) this.ownedKinds.add(kind);
    for (const kind of this.ownedKinds) this.applyKind(kind, stamped.get(kind) ?? []);
    this.index = indexOutcomes(next);
    if (!this.store.synced) this.store.markSynced();
    try {
      await this.saveState();
    } catch (err) {
      report.errors.push({ severity: 'error', file: '', message: `cannot save ${this.stateDirectory}: ${(err as Error).message}` });
    }
    return this.publish(report);
  }

  /**
   * Reads one file unless it is over the per-file bound or larger than what is left of the
   * directory's total (`budget`); a refused file is not read at all, and interpretFile keeps
   * its last good objects in force.
   */
  private async readManifest(name: string, budget: number, statted: Stats | Error): Promise<{ text?: string; error?: string; refusal?: Refusal; unchanged?: boolean }> {
    const path = join(this.directory, name);
    try {
      if (statted instanceof Error) throw statted;
      const info = statted;
      if (!info.isFile()) return { error: 'not a regular file' };
      // Same inode, size and times as when it was last read: not read again (thousands of files rescanned every few seconds).
      const sig = `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
      if (this.fileStats.get(name) === sig && this.texts.has(name) && info.size <= budget) return { unchanged: true };
      if (info.size > this.maxFileBytes) {
        return { error: `larger than ${this.maxFileBytes} bytes`, refusal: { file: name, reason: 'file_too_large', bytes: info.size, limit: this.maxFileBytes } };
      }
      if (info.size > budget) {
        return {
          error: totalMessage(info.size, this.maxTotalBytes, budget),
          refusal: { file: name, reason: 'total_too_large', bytes: info.size, limit: this.maxTotalBytes },
        };
      }
      const text = await readFile(path, 'utf8');
      this.fileStats.set(name, sig);
      // Grown between stat and read: judged by what was read.
      const bytes = Buffer.byteLength(text);
      if (bytes > this.maxFileBytes) return { error: `larger than ${this.maxFileBytes} bytes`, refusal: { file: name, reason: 'file_too_large', bytes, limit: this.maxFileBytes } };
      if (bytes > budget) {
        return {
          error: totalMessage(bytes, this.maxTotalBytes, budget),
          refusal: { file: name, reason: 'total_too_large', bytes, limit: this.maxTotalBytes },
        };
      }
      return { text };
    } catch (err) {
      return { error: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
    }
  }

  /** Emits `refused` for refusals that were not there in the previous scan (a file still refused is counted once); true when the set changed. */
  private noteRefusals(refusals: Refusal[]): boolean {
    const keys = new Set<string>();
    let changed = false;
    for (const r of refusals) {
      const key = `${r.file}\0${r.reason}\0${r.bytes}`;
      keys.add(key);
      if (!this.refusedKeys.has(key)) {
        this.emit('refused', r);
        changed = true;
      }
    }
    if (keys.size !== this.refusedKeys.size) changed = true;
    this.refusedKeys = keys;
    return changed;
  }

  /**
  /**
   * The incremental half of a scan: `changedFiles` were re-read (or went
   * away). Their objects' winners are decided again (first in file, then
   * document order, as combineOutcomes does for everything), stamped and
   * applied; duplicates are reported; nothing else is touched.
   */
  private async applyChangedFiles(before: ReadonlyMap<string, FileOutcome>, next: ReadonlyMap<string, FileOutcome>, changedFiles: Set<string>, files: number): Promise<ScanReport> {
    const index = this.index!;
    const affected = new Set<string>();
    for (const file of changedFiles) {
      for (const r of before.get(file)?.records ?? []) affected.add(r.identity);
      for (const r of next.get(file)?.records ?? []) affected.add(r.identity);
      index.replaceFile(file, next.get(file)?.records ?? []);
    }
    const nowText = this.now().toISOString().replace(/\.\d{3}Z$/, 'Z');
    for (const identity of affected) {
      const winner = index.winner(identity);
      if (!winner) {
        if (this.creationTimestamps.delete(identity)) this.creationChanged = true;
        this.removeApplied(identity);
        continue;
      }
      const obj = this.stampOne(winner.record.object, nowText);
      this.ownedKinds.add(obj.kind);
      this.applyOne(obj);
    }
    // Problems in the order a full scan reports them: per file, its own, then its losing duplicates.
    const duplicates = index.duplicatesByFile();
    const problems = [...next.keys()].sort().flatMap((f) => [...next.get(f)!.problems, ...(duplicates.get(f) ?? [])]);
    const report: ScanReport = {
      files,
      objects: index.size,
      errors: problems.filter((p) => p.severity === 'error'),
      warnings: problems.filter((p) => p.severity === 'warning'),
      ignored: problems.filter((p) => p.severity === 'ignored'),
    };
    this.current = report;
    try {
      await this.saveState();
    } catch (err) {
      report.errors.push({ severity: 'error', file: '', message: `cannot save ${this.stateDirectory}: ${(err as Error).message}` });
    }
    return this.publish(report);
  }

  /**
   * One object with the time it was first seen (stable across scans and
   * restarts) as `firstSeen`, and as its creationTimestamp unless the file
   * gives one (kept: an object exported from a cluster keeps its age); the
   * same reference while unchanged.
   */
  private stampOne(obj: ModelObject, nowText: string): ModelObject {
    const identity = identityOf(obj);
    let seen = this.creationTimestamps.get(identity);
    if (!seen) {
      seen = nowText;
      this.creationTimestamps.set(identity, seen);
      this.creationChanged = true;
    }
    const created = obj.meta.creationTimestamp ?? seen;
    const cached = this.stamped.get(obj);
    if (cached?.meta.firstSeen === seen && cached.meta.creationTimestamp === created) return cached;
    const stamped = { ...obj, meta: { ...obj.meta, creationTimestamp: created, firstSeen: seen } } as ModelObject;
    this.stamped.set(obj, stamped);
    return stamped;
  }

  /** Puts one object in the store if it differs from what this source put there last. */
  private applyOne(o: ModelObject): void {
    let applied = this.applied.get(o.kind);
    if (!applied) this.applied.set(o.kind, (applied = new Map()));
    const key = objectKey(o.meta);
    const prev = applied.get(key);
    if (prev?.object === o) return;
    applied.set(key, { object: o });
    if (!prev || JSON.stringify(prev.object) !== JSON.stringify(o)) this.store.apply(o);
  }

  private removeApplied(identity: string): void {
    const slash = identity.indexOf('/');
    const kind = identity.slice(0, slash) as Kind;
    const key = identity.slice(slash + 1);
    if (this.applied.get(kind)?.delete(key)) this.store.remove(kind, key);
  }

  private stamp(byKind: Map<Kind, ModelObject[]>): Map<Kind, ModelObject[]> {
    const seen = new Set<string>();
    const nowText = this.now().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const out = new Map<Kind, ModelObject[]>();
    for (const [kind, list] of byKind) {
      out.set(
        kind,
        list.map((obj) => {
          seen.add(identityOf(obj));
          return this.stampOne(obj, nowText);
        }),
      );
    }
    // Deleted objects forget their age, as in Kubernetes: re-creating one makes it new.
    for (const identity of this.creationTimestamps.keys()) {
      if (!seen.has(identity)) {
        this.creationTimestamps.delete(identity);
        this.creationChanged = true;
      }
    }
    return out;
  }

  /**
   * Brings the store in line with `objects` for one kind. Unchanged objects are the same
   * references as last time, and a re-read file's objects are compared by content here, so
   * the store only sees real changes: a few applied one by one, many at once with
   * replaceAll (one batched change event).
   */
  private applyKind(kind: Kind, objects: ModelObject[]): void {
    const previous = this.applied.get(kind) ?? new Map<string, AppliedObject>();
    const next = new Map<string, AppliedObject>();
    const changed: ModelObject[] = [];
    for (const o of objects) {
      const key = objectKey(o.meta);
      const prev = previous.get(key);
      if (prev?.object === o) {
        next.set(key, prev);
        continue;
      }
      next.set(key, { object: o });
      // Compared by content only when a re-read file brought a new instance (a first scan compares nothing).
      if (!prev || JSON.stringify(prev.object) !== JSON.stringify(o)) changed.push(o);
    }
    const removed = [...previous.keys()].filter((key) => !next.has(key));
    this.applied.set(kind, next);
    if (changed.length === 0 && removed.length === 0) return;
    if (changed.length + removed.length > 64) {
      this.store.replaceAll(kind, objects);
      return;
    }
    for (const key of removed) this.store.remove(kind, key);
    for (const o of changed) this.store.apply(o);
  }

  private publish(report: ScanReport): ScanReport {
    this.current = report;
    const errorKeys = new Set(report.errors.map(formatProblem));
    if (this.listenerCount('error') > 0) {
      for (const p of report.errors) if (!this.errorKeys.has(formatProblem(p))) this.emit('error', p);
    }
    this.errorKeys = errorKeys;
    const key = JSON.stringify([report.files, report.objects, this.problems.map(formatProblem)]);
    if (key !== this.reportKey) {
      this.reportKey = key;
      this.emit('report', report);
    }
    return report;
  }

  /**
   * Persisted state: one small file per manifest file (what it put in force
   * last), and one with the objects' creation timestamps, under
   * `<state-dir>/manifests/`. An edit rewrites only its own file's record,
   * so a directory of 10,000 services costs nothing per edit (one JSON of
   * everything was ~15 MB, rebuilt and rewritten on every change).
   * A state from before (one `manifests-state.json`) is read once, then removed.
   */
  private async loadState(): Promise<void> {
    let names: string[] = [];
    try {
      names = await readdir(this.stateDirectory);
    } catch {
      return this.loadLegacyState();
    }
    try {
      const created = JSON.parse(await readFile(join(this.stateDirectory, CREATED_FILE), 'utf8')) as { directory?: string; creationTimestamps?: Record<string, string> };
      if (created.directory !== this.directory) return; // another directory's state: start fresh
      this.creationTimestamps = new Map(Object.entries(created.creationTimestamps ?? {}));
      this.savedCreated = JSON.stringify(created);
    } catch {
      return; // no or corrupt timestamps: objects get fresh ages, records are rewritten on the next save
    }
    for (const name of names) {
      if (!name.endsWith('.json') || name === CREATED_FILE) continue;
      const file = decodeURIComponent(name.slice(0, -'.json'.length));
      try {
        const records = JSON.parse(await readFile(join(this.stateDirectory, name), 'utf8')) as FileRecord[];
        this.outcomes.set(file, { records, problems: [] });
        this.savedOutcomes.set(file, this.outcomes.get(file)!);
      } catch {
        // A corrupt record is replaced on the next save.
      }
    }
  }

  private async loadLegacyState(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.legacyStatePath, 'utf8');
    } catch {
      return; // first start
    }
    try {
      const state = JSON.parse(text) as PersistedState;
      if (state.version !== 1 || state.directory !== this.directory) return;
      this.creationTimestamps = new Map(Object.entries(state.creationTimestamps ?? {}));
      for (const [file, records] of Object.entries(state.files ?? {})) {
        this.outcomes.set(file, { records, problems: [] });
      }
      this.legacyToRemove = true;
    } catch {
      // A corrupt state file is replaced on the next save; objects get fresh ages.
    }
  }

  private async saveState(): Promise<void> {
    await mkdir(this.stateDirectory, { recursive: true });
    for (const [file, outcome] of this.outcomes) {
      if (this.savedOutcomes.get(file) === outcome) continue;
      await writeFileAtomic(join(this.stateDirectory, `${encodeURIComponent(file)}.json`), `${JSON.stringify(outcome.records)}\n`);
      this.savedOutcomes.set(file, outcome);
    }
    for (const file of [...this.savedOutcomes.keys()]) {
      if (this.outcomes.has(file)) continue;
      await unlink(join(this.stateDirectory, `${encodeURIComponent(file)}.json`)).catch(() => undefined);
      this.savedOutcomes.delete(file);
    }
    if (this.creationChanged || this.savedCreated === undefined) {
      const sorted = [...this.creationTimestamps].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      const text = JSON.stringify({ version: 2, directory: this.directory, creationTimestamps: Object.fromEntries(sorted) });
      if (text !== this.savedCreated) await writeFileAtomic(join(this.stateDirectory, CREATED_FILE), `${text}\n`);
      this.savedCreated = text;
      this.creationChanged = false;
    }
    if (this.legacyToRemove) {
      await unlink(this.legacyStatePath).catch(() => undefined);
      this.legacyToRemove = false;
    }
  }
}

/** stat() of many files, STAT_CONCURRENCY at a time; an error stands in for a file that could not be statted. */
async function statAll(directory: string, names: readonly string[]): Promise<Map<string, Stats | Error>> {
  const out = new Map<string, Stats | Error>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const name = names[next++]!;
      out.set(name, await stat(join(directory, name)).catch((err: Error) => err));
    }
  };
  await Promise.all(Array.from({ length: Math.min(STAT_CONCURRENCY, names.length) }, worker));
  return out;
}

const STAT_CONCURRENCY = 32;

/** Past this many changed files in one scan, the whole directory is combined again (cheaper than file by file). */
const INCREMENTAL_MAX_FILES = 64;

function digest(text: string): string {
  return createHash('sha1').update(text).digest('base64');
}
