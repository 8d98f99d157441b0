// Memory snapshots of VMs: the generation header and the diff chain.
export { type AddGenerationResult, addGeneration, collapse } from './chain.js';
export { ChainReader } from './chain-reader.js';
export { type DiffResult, materializeChain, sparseCopy, writeDiffAgainstChain } from './flat-memory.js';
export {
  DEFAULT_BLOCK_SIZE,
  emptyHeader,
  generationFile,
  generationFiles,
  HEADER_FILE,
  MAX_GENERATIONS,
  type MemoryHeader,
  newBuildId,
  readHeader,
  writeHeader,
} from './header.js';
