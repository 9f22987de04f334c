// The tar reader/writer used by the layer builder (OCI layer tar → RAFS) and by unpack (RAFS → tar).
export { TarFormatError, TarPathError, LayerDecompressError } from './errors.js';
export { BLOCK_SIZE, decodeHeader, encodeHeader, isZeroBlock, type EntryType, type HeaderFormat, type TarHeader } from './header.js';
export { MAX_META_SIZE, parsePaxRecords, decodePaxAttributes, encodePaxRecords, type PaxAttributes, type PaxRecords } from './pax.js';
export { parseTar, type ParseTarOptions, type TarEntry } from './parse.js';
export { entryPathComponents, NAME_MAX } from './path.js';
export { openLayerStream, detectCompression, type LayerCompression, type OpenLayerOptions, type ZstdStreamDecoder } from './decompress.js';
export { TarWriter, type TarEntryMeta, type TarFileData } from './write.js';
