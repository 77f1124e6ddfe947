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
 * Errors: `parseManifestText` throws a ManifestError listing every problem of the file, each
 * `FILE:LINE: Kind namespace/name: field: message` (YAML syntax errors `FILE:LINE:COLUMN:
 * message`). A file with any error yields nothing: it is refused whole. Parsing never throws
 * anything else for bad input, whatever the text.
 */
import { type Document, LineCounter, parseAllDocuments } from 'yaml';
import { UserError } from '../user-error.ts';
import { endpointSliceObject, serviceObject, typeMeta } from './manifest-schema.ts';
import { Notes, type ServiceEntry, type SliceEntry, serviceEntry, sliceEntry } from './manifest-map.ts';
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

class FileReader {
  readonly errors: string[] = [];
  readonly notes = new Notes();
  readonly services: ServiceEntry[] = [];
  readonly slices: SliceEntry[] = [];
  private readonly seen = new Map<string, string>();

  constructor(
    private readonly file: string,
    private readonly lines: LineCounter,
  ) {}

  /** The line of the deepest node of `path` that exists in `doc`. */
  lineOf(doc: Document, path: readonly PropertyKey[]): number {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as unknown[], true);
      const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
      if (range) return this.lines.linePos(range[0]).line;
    }
    return 1;
  }

  private error(doc: Document, path: readonly PropertyKey[], what: string, message: string): void {
    this.errors.push(`${this.file}:${this.lineOf(doc, path)}: ${what}${message}`);
  }

  /** One object at `at` (its path in the document), or a List of them. */
  readObject(doc: Document, value: unknown, at: PropertyKey[], depth = 0): void {
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
    const line = this.lineOf(doc, at);
    const id = `${kind} ${namespace}/${name}`;
    const first = this.seen.get(id);
    if (first !== undefined) {
      this.error(doc, at, what, `defined twice in the file (first at line ${first})`);
      return;
    }
    this.seen.set(id, String(line));
    const where = `${this.file}:${line}`;
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
}

/** Reads the manifests of one file's text; `file` names it in messages. */
export function parseManifestText(text: string, file: string): ManifestFile {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const reader = new FileReader(file, lines);
  // An empty file (or only comments) is an EmptyStream: nothing in it, no error.
  const list = Array.isArray(docs) ? docs : [];
  const syntax: string[] = [];
  for (const doc of list) {
    for (const e of doc.errors) {
      const pos = lines.linePos(e.pos[0]);
      syntax.push(`${file}:${pos.line}:${pos.col}: ${e.message.split('\n')[0]}`);
    }
  }
  if (syntax.length > 0) throw new ManifestError(syntax);
  for (const doc of list) {
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      // An alias bomb (exponential expansion through anchors) is refused here.
      reader.errors.push(`${file}:${reader.lineOf(doc, [])}: ${(err as Error).message}`);
      continue;
    }
    if (value === null || value === undefined) continue; // an empty document, e.g. after a trailing ---
    reader.readObject(doc, value, []);
  }
  if (reader.errors.length > 0) throw new ManifestError(reader.errors);
  return { services: reader.services, slices: reader.slices, notes: reader.notes.lines() };
}
