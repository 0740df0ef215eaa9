/** Classic pcap files (`tcpdump -w`): the lab's captures are read with this, and a fixture's frames written for tshark. */

/** Frames of a classic pcap file (as written by `tcpdump -w`), Ethernet link type only. */
export function readPcap(file: Buffer): Buffer[] {
  if (file.length < 24) throw new Error('pcap: file shorter than its header');
  const magic = file.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && file.readUInt32BE(0) !== 0xa1b2c3d4 && file.readUInt32BE(0) !== 0xa1b23c4d) throw new Error('pcap: bad magic (pcapng is not supported; use tcpdump -w)');
  const u32 = (o: number): number => (le ? file.readUInt32LE(o) : file.readUInt32BE(o));
  const linkType = u32(20);
  if (linkType !== 1) throw new Error(`pcap: link type ${linkType} is not Ethernet`);
  const frames: Buffer[] = [];
  let o = 24;
  while (o + 16 <= file.length) {
    const incl = u32(o + 8);
    if (o + 16 + incl > file.length) break;
    frames.push(Buffer.from(file.subarray(o + 16, o + 16 + incl)));
    o += 16 + incl;
  }
  return frames;
}

/** A classic pcap file holding the frames (for tshark/tcpdump -r when debugging a fixture). */
export function writePcap(frames: Buffer[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(1, 20);
  const parts: Buffer[] = [header];
  frames.forEach((f, i) => {
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(i, 0);
    rec.writeUInt32LE(f.length, 8);
    rec.writeUInt32LE(f.length, 12);
    parts.push(rec, f);
  });
  return Buffer.concat(parts);
}
