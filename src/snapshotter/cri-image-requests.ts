// What the CRI keychain needs of a kubelet's image requests (k8s.io/cri-api runtime.v1 and v1alpha2,
// one wire format): PullImage's image reference and pull credentials, RemoveImage's reference. Read
// straight from the protobuf bytes, which are forwarded to the image service as they came (fields
// this reader does not know pass through untouched). Field numbers, from cri-api's api.proto:
// PullImageRequest {ImageSpec image = 1; AuthConfig auth = 2}, RemoveImageRequest {ImageSpec image = 1},
// ImageSpec {string image = 1}, AuthConfig {username = 1, password = 2, auth = 3, server_address = 4,
// identity_token = 5, registry_token = 6}.

/** A PullImageRequest's credentials (CRI's AuthConfig); `auth` is base64 of user:password. */
export interface CriAuthConfig {
  username?: string;
  password?: string;
  auth?: string;
  serverAddress?: string;
  identityToken?: string;
  registryToken?: string;
}

export class CriMessageError extends Error {}

/** Each field of a protobuf message: its number and, for length-delimited ones, its bytes. */
function* fields(msg: Buffer): Generator<{ field: number; bytes?: Buffer }> {
  let at = 0;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (at >= msg.length) throw new CriMessageError('truncated varint');
      const b = msg[at++]!;
      // only lengths and tags are used: past 2^53 they are bogus anyway
      if (shift < 53) value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
    throw new CriMessageError('varint longer than 10 bytes');
  };
  const skip = (n: number): void => {
    if (n > msg.length - at) throw new CriMessageError('field runs past the end of the message');
    at += n;
  };
  while (at < msg.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 0) throw new CriMessageError('field number 0');
    if (wire === 0) varint();
    else if (wire === 1) skip(8);
    else if (wire === 5) skip(4);
    else if (wire === 2) {
      const length = varint();
      const start = at;
      skip(length);
      yield { field, bytes: msg.subarray(start, at) };
      continue;
    } else throw new CriMessageError(`wire type ${wire} (groups) is not used by the CRI`);
    yield { field };
  }
}

/** The last occurrence of length-delimited field `n` (protobuf: the last one wins), or undefined. */
function lastBytes(msg: Buffer, n: number): Buffer | undefined {
  let found: Buffer | undefined;
  for (const f of fields(msg)) if (f.field === n && f.bytes) found = f.bytes;
  return found;
}

const text = (b: Buffer | undefined): string | undefined => (b === undefined || b.length === 0 ? undefined : b.toString('utf8'));

/** ImageSpec.image of a request whose field 1 is an ImageSpec (PullImage, RemoveImage, ImageStatus). */
export function requestImage(msg: Buffer): string | undefined {
  const spec = lastBytes(msg, 1);
  return spec && text(lastBytes(spec, 1));
}

/** PullImageRequest.auth, or undefined when the request has none (or only empty fields). */
export function pullAuth(msg: Buffer): CriAuthConfig | undefined {
  const auth = lastBytes(msg, 2);
  if (!auth) return undefined;
  const names = ['username', 'password', 'auth', 'serverAddress', 'identityToken', 'registryToken'] as const;
  const out: CriAuthConfig = {};
  for (const f of fields(auth)) {
    const name = names[f.field - 1];
    const value = text(f.bytes);
    if (name && value !== undefined) out[name] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}
