/**
 * Bounds on what one GraphQL request may cost, checked before anything is executed: the
 * text's size (by the HTTP handler) and token count (graphql-js's parser), the selection
 * depth, and the number of fields the operation would resolve per result object once
 * fragments are expanded (computed without expanding them, so nested fragment spreads
 * cannot blow up the check itself). While executing, a work counter and a deadline bound
 * the rest: result objects built, items sorted, candidate rows read.
 */
import { type DocumentNode, type FragmentDefinitionNode, GraphQLError, Kind, type OperationDefinitionNode, type SelectionSetNode } from "graphql";

/** The bounds of one request. */
export interface QueryLimits {
  /** Tokens of the query text (graphql-js `maxTokens`). */
  maxTokens: number;
  /** Deepest selection (the standard introspection query needs 13). */
  maxDepth: number;
  /** Fields selected, fragments expanded, each counted once per selection path. */
  maxFields: number;
  /** Top-level query fields (aliases included). */
  maxRootFields: number;
  /**
   * Selections written in the document (fields, spreads, inline fragments), checked before
   * validation: graphql-js's overlapping-fields rule is quadratic in them.
   */
  maxSelections: number;
  /** Fragment definitions in the document. */
  maxFragments: number;
  /** Work units (result objects, rows examined, items sorted) one request may spend. */
  maxWork: number;
  /** Milliseconds one request may run. */
  timeoutMs: number;
}

/** Defaults sized for a board: a page of 1,000 images with every field stays well inside. */
export const DEFAULT_LIMITS: QueryLimits = {
  maxTokens: 4000,
  maxDepth: 15,
  maxFields: 2000,
  maxRootFields: 16,
  maxSelections: 500,
  maxFragments: 50,
  maxWork: 2_000_000,
  timeoutMs: 5000,
};

/** Checks the size of the document as written (before validation); returns an error message or undefined. */
export function checkSize(doc: DocumentNode, limits: QueryLimits): string | undefined {
  let fragments = 0;
  let selections = 0;
  const walk = (set: SelectionSetNode | undefined): void => {
    if (!set) return;
    for (const s of set.selections) {
      selections++;
      if (s.kind !== Kind.FRAGMENT_SPREAD) walk(s.selectionSet);
    }
  };
  for (const d of doc.definitions) {
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments++;
    if (d.kind === Kind.FRAGMENT_DEFINITION || d.kind === Kind.OPERATION_DEFINITION) walk(d.selectionSet);
  }
  if (fragments > limits.maxFragments) return `the query defines ${fragments} fragments; at most ${limits.maxFragments} are allowed`;
  if (selections > limits.maxSelections) return `the query has ${selections} selections; at most ${limits.maxSelections} are allowed`;
  return undefined;
}

/** Checks depth and field count of the operation to run; returns an error message or undefined. */
export function checkCost(doc: DocumentNode, operation: OperationDefinitionNode, limits: QueryLimits): string | undefined {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of doc.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  // per fragment: [fields, depth], memoised; an unknown or cyclic spread counts nothing here
  // (this runs before validation, which then refuses the document)
  const memo = new Map<string, [number, number]>();
  const measure = (set: SelectionSetNode, seen: Set<string>): [number, number] => {
    let fields = 0;
    let depth = 0;
    for (const s of set.selections) {
      let f = 0;
      let d = 0;
      if (s.kind === Kind.FIELD) {
        const [fi, di] = s.selectionSet ? measure(s.selectionSet, seen) : [0, 0];
        f = 1 + fi;
        d = 1 + di;
      } else if (s.kind === Kind.INLINE_FRAGMENT) {
        [f, d] = measure(s.selectionSet, seen);
      } else {
        const name = s.name.value;
        let m = memo.get(name);
        if (!m) {
          const def = fragments.get(name);
          if (!def || seen.has(name)) continue;
          m = measure(def.selectionSet, new Set(seen).add(name));
          memo.set(name, m);
        }
        [f, d] = m;
      }
      fields += f;
      if (d > depth) depth = d;
      if (fields > limits.maxFields) return [fields, depth];
    }
    return [fields, depth];
  };
  const roots = operation.selectionSet.selections.length;
  if (roots > limits.maxRootFields) return `the query has ${roots} top-level fields; at most ${limits.maxRootFields} are allowed`;
  const [fields, depth] = measure(operation.selectionSet, new Set());
  if (depth > limits.maxDepth) return `the query is ${depth} levels deep; at most ${limits.maxDepth} are allowed`;
  if (fields > limits.maxFields) return `the query selects more than ${limits.maxFields} fields (fragments expanded); select fewer`;
  return undefined;
}

/** A work counter with a deadline; `spend` throws a GraphQL error past either bound. */
export function workBudget(limits: QueryLimits, now: () => number = performance.now.bind(performance)): (units: number) => void {
  const deadline = now() + limits.timeoutMs;
  let spent = 0;
  return (units) => {
    spent += units;
    if (spent > limits.maxWork) throw new GraphQLError(`the query needs more than ${limits.maxWork} units of work; ask for smaller pages or fewer fields`, { extensions: { code: "QUERY_TOO_COSTLY" } });
    if (now() > deadline) throw new GraphQLError(`the query ran past its ${limits.timeoutMs} ms limit; ask for smaller pages or fewer fields`, { extensions: { code: "QUERY_TOO_COSTLY" } });
  };
}
