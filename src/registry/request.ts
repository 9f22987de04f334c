// What a repository and an upload need of the registry client: requests that authenticate
// themselves, and retries. An interface of its own, so that they depend on it rather than on the
// client that creates them.
import type { HttpRequest, HttpResponse } from './transport.js';

export interface UploadSettings {
  chunkedThreshold: number;
  chunkSize: number;
}

export interface RegistryRequest extends Omit<HttpRequest, 'url'> {
  host: string;
  /** `/v2/...` on `host`, or an absolute URL the registry gave us (an upload location). */
  path: string;
  /** Token scopes the request needs, e.g. `repository:library/busybox:pull`. */
  scopes: readonly string[];
}

export interface RegistrySession {
  readonly upload: UploadSettings;
  /** One request, authenticated as the registry asks (challenge, credentials or token, one retry on 401). */
  send(req: RegistryRequest): Promise<HttpResponse>;
  /** Runs `attempt` under the retry policy (once only when `repeatable` is false). */
  retrying<T>(host: string, what: string, attempt: () => Promise<T>, repeatable?: boolean): Promise<T>;
}
