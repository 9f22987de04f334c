// The snapshotter's typed errors, one per containerd errdefs class the service can report. The gRPC
// layer turns each into its status code (containerd maps the codes back to errdefs), so the core
// never knows about gRPC and a bad request can never surface as a crash.
export class SnapshotError extends Error {}
export class NotFoundError extends SnapshotError {}
export class AlreadyExistsError extends SnapshotError {}
export class FailedPreconditionError extends SnapshotError {}
export class InvalidArgumentError extends SnapshotError {}
