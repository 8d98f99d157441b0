export async function runUpFromCli(_opts: Record<string, string | undefined>): Promise<void> {
  throw new Error(
    'the control plane is not built yet; for now run envd alone with `npx wrenn envd --port 49983`',
  );
}
export async function runServerFromCli(opts: Record<string, string | undefined>): Promise<void> {
  return runUpFromCli(opts);
}
