// The client's wire types held equal to the server's OpenAPI document, at
// compile time (`npm run typecheck`, and so `npm run build` and CI).
// packages/client/src/openapi.gen.ts is generated from /openapi.json by a Go
// test (`go test ./internal/api -run TypeScript -update`), which fails when
// the two differ; here each client type must then have exactly the
// server's fields (a missing or extra one is named in the error), and every
// value the server may send must fit it (the client may narrow a string to
// a union: JobState, a log stream). Requests go the other way: what the
// client sends must fit what the server takes.
//
// One leniency: huma marks every array nullable, while the server always
// sends [] (an empty list), so null is dropped from arrays the server sends.
import type {
  ChildrenCounts,
  CreateJob,
  JobSnapshot,
  JobState,
  LogLine,
  LogPage,
  PipelineInfo,
  ProgressReport,
  ProjectSummary,
  StageSnapshot,
} from "@progressd/client";
import type * as Wire from "../packages/client/src/openapi.gen";

/** Compiles only when T is never: its members are named in the error. */
type MustBeNever<T extends never> = T;

/** Keys of one side the other lacks. */
type Missing<W, C> = Exclude<keyof W, keyof C>;

/** A server's array fields without the null huma adds to every array. */
type Sent<W> = { [K in keyof W]: [Exclude<W[K], null | undefined>] extends [unknown[]] ? Exclude<W[K], null> : W[K] };

/** The shared keys whose value on the sending side does not fit the receiving side (unknown: a raw JSON field, by name only). */
type Misfits<From, To> = {
  [K in keyof From & keyof To]-?: unknown extends From[K] ? never : [From[K]] extends [To[K]] ? never : K;
}[keyof From & keyof To];

/** The snapshot fields the client narrows: their own checks follow. */
type Narrowed = "state" | "stages";

export type SnapshotChecks = [
  MustBeNever<Missing<Wire.Snapshot, JobSnapshot>>,
  MustBeNever<Missing<JobSnapshot, Wire.Snapshot>>,
  MustBeNever<Misfits<Sent<Omit<Wire.Snapshot, Narrowed>>, JobSnapshot>>,
  MustBeNever<Missing<Wire.Stage, StageSnapshot> | Missing<StageSnapshot, Wire.Stage>>,
  MustBeNever<Misfits<Omit<Wire.Stage, "state">, StageSnapshot>>,
  MustBeNever<Misfits<{ state: JobState }, Wire.Stage>>, // a JobState is one of the server's state strings
  MustBeNever<Missing<Wire.Children, ChildrenCounts> | Missing<ChildrenCounts, Wire.Children>>,
  MustBeNever<Misfits<Wire.Children, ChildrenCounts>>,
];

export type ReadChecks = [
  MustBeNever<Missing<Wire.LogLine, LogLine> | Missing<LogLine, Wire.LogLine>>,
  MustBeNever<Misfits<Omit<Wire.LogLine, "stream">, LogLine>>,
  MustBeNever<Missing<Wire.LogPage, LogPage> | Missing<LogPage, Wire.LogPage>>,
  MustBeNever<Misfits<Sent<Omit<Wire.LogPage, "lines">>, LogPage>>, // lines: as LogLine above
  MustBeNever<Missing<Wire.ProjectSummary, ProjectSummary> | Missing<ProjectSummary, Wire.ProjectSummary>>,
  MustBeNever<Misfits<Wire.ProjectSummary, ProjectSummary>>,
  MustBeNever<Missing<Wire.JobCounts, ProjectSummary["jobs"]> | Missing<ProjectSummary["jobs"], Wire.JobCounts>>,
  MustBeNever<Missing<Wire.PipelineInfo, PipelineInfo> | Missing<PipelineInfo, Wire.PipelineInfo>>,
  MustBeNever<Misfits<Sent<Wire.PipelineInfo>, PipelineInfo>>,
];

export type RequestChecks = [
  MustBeNever<Missing<Wire.Report, ProgressReport> | Missing<ProgressReport, Wire.Report>>,
  MustBeNever<Misfits<ProgressReport, Wire.Report>>,
  MustBeNever<Missing<Wire.CreateInputBody, CreateJob>>,
  MustBeNever<Missing<CreateJob, Wire.CreateInputBody>>,
  MustBeNever<Misfits<CreateJob, Wire.CreateInputBody>>,
];
