/**
 * Reading one file of Kubernetes manifests: YAML (or JSON) text → Service and EndpointSlice
 * entries (manifest-map.ts), with a note for what is left out, or every problem with its
 * file and line.
 *
 * A file holds any number of YAML documents (`---`), each an object or a `kind: List`
 * (apiVersion v1) whose `items` are objects, as `kubectl get svc,endpointslices -A -o yaml`
 * prints. Service (v1) and EndpointSlice (discovery.k8s.io/v1) are read; other kinds are
 * left out with one note per kind. A Service or EndpointSlice of another apiVersion is an
 * error, not a note: it says what the author meant, and nodeplane cannot read it.
 *
 * Two readings of the text. The `yaml` package keeps every node with its position, which
 * messages need, but reads ~1 MB a second: a minute for the 17 MB that `kubectl get
 * svc,endpointslices -A -o yaml` prints for 10,000 Services. So a file is first read without
 * positions — JSON.parse when it is JSON (`kubectl -o json`), else js-yaml (YAML 1.2 core
 * schema, duplicate keys refused, as the `yaml` package is set up to), tens of times faster —
 * and its objects checked. Only when that fails (a syntax error, anchors or aliases, which
 * the slow reading bounds, or any problem with an object) is the file read again with
 * positions, which then gives every message its line. An object's `file:line` for later
 * messages (a clash with another file) is worked out only if one is written (`LazyWhere`).
 * Where the two readers could disagree — a JSON file with a key twice (JSON.parse takes the
 * last) — the fast reading is taken.
 *
 * Errors: `parseManifestText` throws a ManifestError listing every problem of the file, each
 * `FILE:LINE: Kind namespace/name: field: message` (YAML syntax errors `FILE:LINE:COLUMN:
 * message`). A file with any error yields nothing: it is refused whole. Parsing never throws
 * anything else for bad input, whatever the text.
 */
import { CORE_SCHEMA, loadAll } from 'js-yaml';
import { type Document, LineCounter, parseAllDocuments } from 'yaml';
import { UserError } from '../user-error.ts';
import { endpointSliceObject, serviceObject, typeMeta } from './manifest-schema.ts';
import { LazyWhere, Notes, type ServiceEntry, type SliceEntry, serviceEntry, sliceEntry } from './manifest-map.ts';
import { formatPath, issueLines } from './zod-issues.ts';

/** Manifests that cannot be used; `errors` are complete lines, each naming file and line. */
export class ManifestError extends UserError {
  constructor(readonly errors: string[]) {
    super(errors.join('\n'));
    this.name = 'ManifestError';
  }
}

/** What one file holds, for nodeplane. */
export interface ManifestFile {
  services: ServiceEntry[];
  slices: SliceEntry[];
  /** What was left out, one line per reason (not prefixed with the file). */
  notes: string[];
}

/** Lists nested deeper than this are refused (kubectl flattens them; nobody writes them). */
const MAX_LIST_DEPTH = 4;

const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Lines of nodes, from the `yaml` package's documents of a text (the slow reading). */
class Positions {
  constructor(
    readonly docs: readonly Document[],
    readonly lines: LineCounter,
  ) {}

  /** The line of the deepest node of `path` that exists in document `doc`. */
  line(doc: number, path: readonly PropertyKey[]): number {
    const d = this.docs[doc];
    if (d === undefined) return 1;
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? d.contents : d.getIn(path.slice(0, n) as unknown[], true);
      const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
      if (range) return this.lines.linePos(range[0]).line;
    }
    return 1;
  }
}

/** The fast reading met a problem: read the file again with positions. */
class NeedsPositions extends Error {}

/**
 * Lines of the objects the fast reading found, worked out in one slow reading the first time a
 * message asks for one (then the text and paths are let go; only the lines stay).
 */
class LateLines {
  private paths: { doc: number; path: readonly PropertyKey[] }[] | null = [];
  private lines: Int32Array | null = null;

  constructor(private text: string | null) {}

  /** Registers an object's path; the number to ask `line` with. */
  add(doc: number, path: readonly PropertyKey[]): number {
    this.paths!.push({ doc, path });
    return this.paths!.length - 1;
  }

  line(k: number): number {
    if (this.lines === null) {
      const p = readPositions(this.text!).positions;
      this.lines = Int32Array.from(this.paths!, (x) => p.line(x.doc, x.path));
      this.paths = null;
      this.text = null;
    }
    return this.lines[k];
  }
}

class FileReader {
  readonly errors: string[] = [];
  readonly notes = new Notes();
  readonly services: ServiceEntry[] = [];
  readonly slices: SliceEntry[] = [];
  private readonly seen = new Map<string, string>();

  /**
   * With `positions` (the slow reading) problems are gathered with their lines; without, the
   * first problem throws NeedsPositions, and each entry's line is left to `late`.
   */
  constructor(
    private readonly file: string,
    private readonly positions: Positions | null,
    private readonly late: LateLines | null,
  ) {}

  lineOf(doc: number, path: readonly PropertyKey[]): number {
    return this.positions === null ? 1 : this.positions.line(doc, path);
  }

  private error(doc: number, path: readonly PropertyKey[], what: string, message: string): void {
    if (this.positions === null) throw new NeedsPositions();
    this.errors.push(`${this.file}:${this.lineOf(doc, path)}: ${what}${message}`);
  }

  /** One object at `at` (its path in document `doc`), or a List of them. */
  readObject(doc: number, value: unknown, at: PropertyKey[], depth = 0): void {
    if (!isMapping(value)) {
      this.error(doc, at, '', `${at.length ? `${formatPath(at)}: ` : ''}expected a Kubernetes object (a mapping with apiVersion and kind)`);
      return;
    }
    const meta = typeMeta.safeParse(value, { reportInput: true });
    if (!meta.success) {
      for (const issue of meta.error.issues) this.error(doc, [...at, ...issue.path], '', issueLines(issue).map((l) => (at.length ? `${formatPath(at)}.${l}` : l)).join('; '));
      return;
    }
    const { apiVersion, kind } = meta.data;
    if (kind === 'List' && apiVersion === 'v1') {
      const items = value.items;
      if (depth >= MAX_LIST_DEPTH) this.error(doc, at, 'List: ', `lists nested more than ${MAX_LIST_DEPTH} deep`);
      else if (items !== null && items !== undefined && !Array.isArray(items)) this.error(doc, [...at, 'items'], 'List: ', 'items: expected a list');
      else (items ?? []).forEach((item: unknown, i: number) => this.readObject(doc, item, [...at, 'items', i], depth + 1));
      return;
    }
    const name = isMapping(value.metadata) && typeof value.metadata.name === 'string' ? value.metadata.name : '(no name)';
    const namespace = isMapping(value.metadata) && typeof value.metadata.namespace === 'string' ? value.metadata.namespace : 'default';
    const what = `${kind} ${namespace}/${name}: `;
    if (kind !== 'Service' && kind !== 'EndpointSlice') {
      this.notes.add(`${kind} objects left out (only Service v1 and EndpointSlice discovery.k8s.io/v1 are read)`);
      return;
    }
    const wanted = kind === 'Service' ? 'v1' : 'discovery.k8s.io/v1';
    if (apiVersion !== wanted) {
      this.error(doc, [...at, 'apiVersion'], what, `apiVersion: ${apiVersion} is not read; nodeplane reads ${kind} ${wanted}`);
      return;
    }
    const id = `${kind} ${namespace}/${name}`;
    const first = this.seen.get(id);
    if (first !== undefined) {
      this.error(doc, at, what, `defined twice in the file (first at line ${first})`);
      return;
    }
    let where: string | LazyWhere;
    if (this.late === null) {
      const line = this.lineOf(doc, at);
      this.seen.set(id, String(line));
      where = `${this.file}:${line}`;
    } else {
      this.seen.set(id, '');
      const { file, late } = this;
      const k = late.add(doc, at);
      where = new LazyWhere(() => `${file}:${late.line(k)}`);
    }
    const schema = kind === 'Service' ? serviceObject : endpointSliceObject;
    const parsed = schema.safeParse(value, { reportInput: true });
    if (!parsed.success) {
      for (const issue of parsed.error.issues) for (const l of issueLines(issue)) this.error(doc, [...at, ...issue.path], what, l);
      return;
    }
    if (kind === 'Service') {
      const e = serviceEntry(parsed.data as never, where, this.notes);
      if (e !== null) this.services.push(e);
    } else {
      const e = sliceEntry(parsed.data as never, where, this.notes);
      if (e !== null) this.slices.push(e);
    }
  }

  result(): ManifestFile {
    if (this.errors.length > 0) throw new ManifestError(this.errors);
    return { services: this.services, slices: this.slices, notes: this.notes.lines() };
  }
}

/** An anchor (`&a`) or alias (`*a`) where a node may start: left to the slow reading, which bounds alias expansion. */
const ANCHOR_OR_ALIAS = /(?:^|[\s[{,])[&*][^\s[\]{},]/m;

/** The documents of `text` read without positions, or null when only the slow reading may tell. */
function quickDocuments(text: string): unknown[] | null {
  const first = /\S/.exec(text)?.[0];
  if (first === '{' || first === '[') {
    try {
      return [JSON.parse(text)];
    } catch {
      // Not JSON after all (a YAML flow collection, or broken): YAML's turn.
    }
  }
  if (ANCHOR_OR_ALIAS.test(text)) return null;
  try {
    return loadAll(text, null, { schema: CORE_SCHEMA });
  } catch {
    return null;
  }
}

/** The slow reading: the `yaml` package's documents with positions, and their syntax errors. */
function readPositions(text: string): { positions: Positions; syntax: { pos: number; message: string }[] } {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  // An empty file (or only comments) is an EmptyStream: nothing in it, no error.
  const list = Array.isArray(docs) ? docs : [];
  const syntax = list.flatMap((doc) => doc.errors.map((e) => ({ pos: e.pos[0], message: e.message.split('\n')[0] })));
  return { positions: new Positions(list, lines), syntax };
}

/** Reads the manifests of one file's text; `file` names it in messages (see the header). */
export function parseManifestText(text: string, file: string): ManifestFile {
  return readManifestFast(text, file) ?? readManifestWithPositions(text, file);
}

/** The fast reading (see the header): what the file gives, or null when the slow one must tell. */
export function readManifestFast(text: string, file: string): ManifestFile | null {
  const docs = quickDocuments(text);
  if (docs === null) return null;
  const reader = new FileReader(file, null, new LateLines(text));
  try {
    docs.forEach((value, i) => {
      if (value !== null && value !== undefined) reader.readObject(i, value, []);
    });
    return reader.result();
  } catch (err) {
    if (err instanceof NeedsPositions) return null;
    throw err;
  }
}

/** The slow reading, with positions: what the file gives, or a ManifestError with every problem. */
export function readManifestWithPositions(text: string, file: string): ManifestFile {
  const { positions, syntax } = readPositions(text);
  if (syntax.length > 0) {
    throw new ManifestError(
      syntax.map((e) => {
        const pos = positions.lines.linePos(e.pos);
        return `${file}:${pos.line}:${pos.col}: ${e.message}`;
      }),
    );
  }
  const reader = new FileReader(file, positions, null);
  positions.docs.forEach((doc, i) => {
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      // An alias bomb (exponential expansion through anchors) is refused here.
      reader.errors.push(`${file}:${reader.lineOf(i, [])}: ${(err as Error).message}`);
      return;
    }
    if (value === null || value === undefined) return; // an empty document, e.g. after a trailing ---
    reader.readObject(i, value, []);
  });
  return reader.result();
}
