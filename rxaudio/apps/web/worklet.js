// AudioWorklet: mixes the microphone to mono and posts blocks of `block` samples to the page,
// at the AudioContext's own rate (the page declares it in `start`; the server converts).
class Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.block = (options.processorOptions && options.processorOptions.block) || 2048;
    this.buf = new Float32Array(this.block);
    this.n = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const len = input[0].length;
    const chans = input.length;
    for (let i = 0; i < len; i++) {
      let s = 0;
      for (let c = 0; c < chans; c++) s += input[c][i];
      this.buf[this.n++] = s / chans;
      if (this.n === this.block) {
        this.port.postMessage(this.buf.buffer, [this.buf.buffer]);
        this.buf = new Float32Array(this.block);
        this.n = 0;
      }
    }
    return true;
  }
}

registerProcessor("rxaudio-capture", Capture);
