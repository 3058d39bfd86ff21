/**
 * A child process's output, line by line: a pipe hands over chunks that may end mid-line (a JSON
 * log line of a few KiB often does), so the tail of each chunk waits for the rest of its line.
 * What is left when the stream ends is a line too. Node-side only.
 *
 * @example
 * eachLine(child.stdout!, (line) => log.push(line));
 */
export function eachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let partial = "";
  stream.setEncoding("utf8"); // a multi-byte character split across two chunks stays one character
  stream.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop() ?? "";
    for (const p of parts) onLine(p.endsWith("\r") ? p.slice(0, -1) : p);
  });
  stream.on("end", () => {
    if (partial) onLine(partial);
    partial = "";
  });
}
