// A chunk dictionary read from a bootstrap: which of its blobs a conversion may refer to, its chunks
// by digest with the blob indexes a layer bootstrap gives them, and the forms nydusify names it by.
import { describe, expect, it } from 'vitest';
import { chunkDict, ChunkDictError, parseChunkDictSpec } from '../../src/convert/chunk-dict.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { SAMPLE_CHUNK_SIZE, sampleImage } from '../rafs/helpers.js';

const image = RafsImage.open(writeBootstrap(sampleImage().bootstrap));

describe('chunkDict', () => {
  it('keys every chunk of a usable blob by its digest, the blob first in a layer\'s table', () => {
    const dict = chunkDict(image, SAMPLE_CHUNK_SIZE, 'blake3');
    expect(dict.blobs.map((b) => b.blobId)).toEqual(image.blobs.map((b) => b.blobId));
    const table = [...image.chunkInfoTable()];
    expect(dict.chunks.size).toBe(new Set(table.map((c) => c.digest.toString('hex'))).size);
    for (const c of table) expect(dict.chunks.get(c.digest.toString('hex'))).toMatchObject({ blobIndex: 0, uncompressedSize: c.uncompressedSize });
  });

  it('refuses a dictionary of another digester, or without a blob of the conversion\'s chunk size', () => {
    expect(() => chunkDict(image, SAMPLE_CHUNK_SIZE, 'sha256')).toThrow(ChunkDictError);
    expect(() => chunkDict(image, SAMPLE_CHUNK_SIZE * 2, 'blake3')).toThrow(/no blob of \d+-byte chunks digested with blake3/);
  });

  it('reads nydusify\'s bootstrap:registry:REF and bootstrap:local:PATH', () => {
    expect(parseChunkDictSpec('bootstrap:registry:localhost:5000/ns/app:dict')).toEqual({ registry: 'localhost:5000/ns/app:dict' });
    expect(parseChunkDictSpec('bootstrap:local:/path/dict.boot')).toEqual({ local: '/path/dict.boot' });
    expect(() => parseChunkDictSpec('/path/dict.boot')).toThrow(/expected bootstrap:registry:REF or bootstrap:local:PATH/);
  });
});
