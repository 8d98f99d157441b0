// The start command as Docker composes ENTRYPOINT and CMD (exec and shell forms, a new ENTRYPOINT
// dropping the inherited CMD), an image's own ENTRYPOINT/CMD starting nothing, and E2B's
// setStartCmd taken as it is.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { ImageConfigSchema } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { emptyTemplateConfig } from '../src/db/repositories/template-configs-extra.js';
import { imageConfig } from '../src/services/image-templates.js';
import { parseDockerfile, type StartStep } from '../src/templates/dockerfile.js';
import { applyStartStep, composeStartCommand } from '../src/templates/start-command.js';

const startSteps = (text: string): StartStep[] =>
  parseDockerfile(text).steps.filter((s): s is StartStep => s.kind === 'CMD' || s.kind === 'ENTRYPOINT');

/** The configuration after the Dockerfile's CMD/ENTRYPOINT steps over a base with this ENTRYPOINT/CMD. */
function after(base: { entrypoint: string[]; cmd: string[] }, dockerfile: string) {
  const cfg = { ...emptyTemplateConfig(), ...structuredClone(base) };
  for (const s of startSteps(`FROM minimal\n${dockerfile}`)) applyStartStep(cfg, s);
  return cfg;
}

describe('start command (ENTRYPOINT + CMD)', () => {
  it('keeps exec and shell forms as Docker vectors', () => {
    const [a, b] = startSteps('FROM minimal\nCMD ["python3", "-m", "http.server"]\nENTRYPOINT echo $HOME\n');
    assert.deepEqual(a!.argv, ['python3', '-m', 'http.server']);
    assert.deepEqual(b!.argv, ['/bin/sh', '-c', 'echo $HOME']);
  });

  it('composes ENTRYPOINT then CMD into one shell line', () => {
    assert.equal(composeStartCommand([], []), null);
    assert.equal(composeStartCommand(['/bin/sh', '-c', 'echo "a b" > /tmp/x'], []), 'echo "a b" > /tmp/x');
    assert.equal(composeStartCommand(['tini', '--'], ['node', 'my app.js']), "tini -- node 'my app.js'");
    assert.equal(
      composeStartCommand(['/usr/bin/env', 'EP=1'], ['/bin/sh', '-c', "echo '$EP'"]),
      `/usr/bin/env EP=1 /bin/sh -c 'echo '\\''$EP'\\'''`,
    );
  });

  it("starts nothing for an image's own ENTRYPOINT/CMD, which stay as metadata", () => {
    const cfg = imageConfig(
      create(ImageConfigSchema, { workdir: '/w', user: 'u', entrypoint: ['docker-entrypoint.sh'], cmd: ['python3'] }),
    );
    assert.equal(cfg.startCmd, null);
    assert.deepEqual([cfg.entrypoint, cfg.cmd], [['docker-entrypoint.sh'], ['python3']]);
  });

  it("a Dockerfile CMD over an image composes with the image's ENTRYPOINT", () => {
    const image = { entrypoint: ['docker-entrypoint.sh'], cmd: ['python3'] };
    const exec = after(image, 'CMD ["python3", "app.py"]\n');
    assert.equal(exec.startCmd, 'docker-entrypoint.sh python3 app.py');
    assert.deepEqual(exec.entrypoint, ['docker-entrypoint.sh']);
    const shell = after(image, 'CMD python3 app.py > /tmp/log\n');
    assert.equal(shell.startCmd, "docker-entrypoint.sh /bin/sh -c 'python3 app.py > /tmp/log'");
    // Without an ENTRYPOINT the shell form is the command itself.
    assert.equal(after({ entrypoint: [], cmd: ['bash'] }, 'CMD sleep 1 && date\n').startCmd, 'sleep 1 && date');
  });

  it('a new ENTRYPOINT drops the inherited CMD; a CMD after it is its arguments', () => {
    const image = { entrypoint: [], cmd: ['python3'] };
    const ep = after(image, 'ENTRYPOINT ["node"]\n');
    assert.deepEqual([ep.startCmd, ep.cmd], ['node', []]);
    assert.equal(after(image, 'ENTRYPOINT ["node"]\nCMD ["server.js"]\n').startCmd, 'node server.js');
    // A later CMD replaces an earlier one; the ENTRYPOINT stays.
    assert.equal(after(image, 'ENTRYPOINT ["node"]\nCMD ["a.js"]\nCMD ["b.js"]\n').startCmd, 'node b.js');
  });

  it("E2B's setStartCmd (START) is the whole start command, whatever the base's ENTRYPOINT", () => {
    const cfg = { ...emptyTemplateConfig(), entrypoint: ['docker-entrypoint.sh'], cmd: ['python3'] };
    applyStartStep(cfg, { kind: 'START', line: 1, text: 'START node server.js', command: 'node server.js', argv: [] });
    assert.equal(cfg.startCmd, 'node server.js');
  });
});
