// progressd React bindings.
export { ProgressProvider, useProgressClient, type ProgressProviderProps } from "./context.js";
export {
  useJob,
  useProjectJobs,
  useAllJobs,
  useChannel,
  useChannelError,
  useConnectionState,
  useJobChildren,
  useJobLogs,
  useTaggedJobs,
  useProjects,
  type UseJobOptions,
  type UseProjectJobsOptions,
  type UseChannelJobsOptions,
  type UseProjectsResult,
  type UseProjectsOptions,
  type UseJobLogsOptions,
  type UseJobLogsResult,
} from "./hooks.js";
export { InlineProgressBar, INLINE_PROGRESS_BAR_CSS, type InlineProgressBarProps } from "./InlineProgressBar.js";
export { percent, progressText, progressSpoken, formatDuration } from "./format.js";
