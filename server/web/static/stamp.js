// Reads the timestamp barcode ("stamp", version 2) that rtcgear's test pattern paints into the
// top rows of every frame: capture time T (µs since the Unix epoch), frame counter, CRC-32.
// See docs/stamp.md in the rtcgear repository. Exposes window.rtcgearStamp = { read(imageData) }.
(function () {
  "use strict";
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  function crc32(bytes) {
    let crc = 0xffffffff;
    for (const b of bytes) crc = table[(crc ^ b) & 0xff] ^ (crc >>> 8);
    return (crc ^ 0xffffffff) >>> 0;
  }

  // imageData: RGBA pixels of at least the top 4*W/32 rows of a frame W pixels wide.
  // Returns { wallUs: Number, counter: Number } or null when the stamp is missing or damaged.
  function read(imageData) {
    const { width, height, data } = imageData;
    const cw = width / 32;
    if (cw < 1 || height < Math.floor(4 * cw)) return null;
    const words = [0, 0, 0, 0];
    for (let band = 0; band < 4; band++) {
      let word = 0;
      for (let i = 0; i < 32; i++) {
        const x0 = Math.floor((i + 0.25) * cw), x1 = Math.max(Math.ceil((i + 0.75) * cw), x0 + 1);
        const y0 = Math.floor((band + 0.25) * cw), y1 = Math.max(Math.ceil((band + 0.75) * cw), y0 + 1);
        let sum = 0, count = 0;
        for (let y = y0; y < Math.min(y1, height); y++) {
          for (let x = x0; x < Math.min(x1, width); x++) {
            const p = (y * width + x) * 4;
            sum += (data[p] + data[p + 1] + data[p + 2]) / 3;
            count++;
          }
        }
        const bit = count > 0 && sum >= 128 * count ? 1 : 0;
        word = ((word << 1) | bit) >>> 0;
      }
      words[band] = word;
    }
    const bytes = new Uint8Array(12);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, words[0]);
    view.setUint32(4, words[1]);
    view.setUint32(8, words[2]);
    if (crc32(bytes) !== words[3]) return null;
    return { wallUs: words[0] * 4294967296 + words[1], counter: words[2] };
  }

  window.rtcgearStamp = { read, crc32 };
})();
