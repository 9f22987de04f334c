// The OCI distribution client and OCI image layout store: what the rest of the project imports.
export { Authenticator, mergeScopes, repositoryScope, type Action, type CredentialLookup } from './auth.js';
export { blobSource, type BlobContent, type BlobSource, type BlobStream } from './blob-content.js';
export { parseChallenges, type Challenge } from './challenge.js';
export { RegistryClient, type RegistryClientOptions } from './client.js';
export type { RegistryRequest, RegistrySession, UploadSettings } from './request.js';
export { computeDigest, DigestVerifier, InvalidDigestError, isDigest, validateDigest, verifyDigest } from './digest.js';
export {
  credentialHelperFor,
  dockerConfigCredentials,
  dockerConfigPath,
  inlineCredentials,
  readDockerConfig,
  runCredentialHelper,
  type Credentials,
  type DockerConfig,
} from './docker-config.js';
export { AuthenticationError, DigestMismatchError, RegistryError, RegistryUnreachableError, type RegistryErrorDetails } from './errors.js';
export { openImageStore, type OpenedImage } from './open-image-store.js';
export {
  MAX_REFERRERS,
  resolveImage,
  type BlobRef,
  type FetchedManifest,
  type ImageStore,
  type PutBlobOptions,
  type PutBlobResult,
  type ResolvedImage,
  type SubjectManifestPut,
} from './image-store.js';
export {
  bareMediaType,
  MANIFEST_ACCEPT,
  ManifestFormatError,
  manifestKindOf,
  MediaType,
  parseManifest,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  type ManifestKind,
  type ParsedManifest,
  type Platform,
} from './media-types.js';
export { OciLayoutStore, REF_NAME_ANNOTATION } from './oci-layout.js';
export { DEFAULT_PLATFORM, formatPlatform, listPlatforms, parsePlatform, platformMatches, selectPlatform } from './platform.js';
export {
  DEFAULT_TAG,
  DOCKER_HUB,
  DOCKER_HUB_HOST,
  formatImageLocation,
  formatReference,
  InvalidReferenceError,
  manifestReference,
  parseImageLocation,
  parseReference,
  type ImageLocation,
  type ImageReference,
  type OciLayoutReference,
} from './reference.js';
export { findReferrers, pushReferrer, referrersTag } from './referrers.js';
export { RegistryRepository } from './repository.js';
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.js';
export type { HostOptions, TransportOptions } from './transport.js';
