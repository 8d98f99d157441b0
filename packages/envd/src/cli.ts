export async function runEnvdFromCli(_opts: { port: number; host: string }): Promise<void> {
  throw new Error('envd is being built');
}
