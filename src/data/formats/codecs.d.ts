/**
 * The WebAssembly image decoders (`codecs.js`), compiled when the module loads.
 *
 * @module
 */

/** MozJPEG's decoder (`@jsquash/jpeg`), to instantiate with its Emscripten glue. */
export declare const jpegDecoderModule: WebAssembly.Module;
/** libwebp's decoder (`@jsquash/webp`), to instantiate with its Emscripten glue. */
export declare const webpDecoderModule: WebAssembly.Module;
