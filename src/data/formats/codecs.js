// @ts-self-types="./codecs.d.ts"
// The WebAssembly image decoders, as compiled modules. A source-phase import (`import source`)
// is stable Deno (no unstable flag in the importing project), needs no read permission, and
// puts the `.wasm` files into the module graph, so `deno compile` embeds them. TypeScript
// cannot parse `import source` yet, hence this JavaScript file with its types in codecs.d.ts.
import source jpegDecoderModule from "npm:@jsquash/jpeg@1.6.0/codec/dec/mozjpeg_dec.wasm";
import source webpDecoderModule from "npm:@jsquash/webp@1.5.0/codec/dec/webp_dec.wasm";

export { jpegDecoderModule, webpDecoderModule };
