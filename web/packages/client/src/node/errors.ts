// The errors the Node client adds to ApiError (status, code, message).

import { ApiError } from "../api.js";

/** 409 job_finished: the job is terminal and takes no more reports. */
export class JobFinishedError extends ApiError {
  /** The job's state, when it could be read back. */
  state?: string;
  constructor(status: number, code: string, message: string) {
    super(status, code, message);
    this.name = "JobFinishedError";
  }
}

/** The job was canceled: the worker should stop working on it. */
export class JobCanceledError extends JobFinishedError {
  constructor(message: string) {
    super(409, "job_finished", message);
    this.name = "JobCanceledError";
    this.state = "canceled";
  }
}

/** The server stayed unreachable (or answered 503) for the whole retry window. */
export class ConnectionFailedError extends ApiError {
  constructor(message: string) {
    super(0, "network", message);
    this.name = "ConnectionFailedError";
  }
}
