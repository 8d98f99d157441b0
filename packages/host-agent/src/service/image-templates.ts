// EnsureImageTemplate: the host template for a container image, streamed as the pull's progress
// lines while it runs, then the result (the template and the image's run defaults).
import { create } from '@bufbuild/protobuf';
import { FailedPreconditionError, InvalidArgumentError } from '@wrenn/protocol';
import {
  type EnsureImageTemplateEvent,
  EnsureImageTemplateEventSchema,
  type EnsureImageTemplateRequest,
} from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { ImageTemplateInfo, TemplateProvider } from '../manager/types.js';
import { toPbTemplate } from './index.js';

export async function* ensureImageTemplateEvents(
  templates: TemplateProvider,
  req: EnsureImageTemplateRequest,
): AsyncGenerator<EnsureImageTemplateEvent> {
  if (!templates.fromImage) throw new FailedPreconditionError('this host cannot make templates from container images');
  if (!req.image) throw new InvalidArgumentError('image is required');
  if (!req.username !== !req.password)
    throw new InvalidArgumentError('registry credentials need both a username and a password');
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  let outcome: { info: ImageTemplateInfo } | { err: unknown } | undefined;
  void templates
    .fromImage(req.image, {
      ...(req.username ? { credentials: { username: req.username, password: req.password } } : {}),
      onProgress: (line) => {
        lines.push(line);
        wake?.();
      },
    })
    .then(
      (info) => {
        outcome = { info };
      },
      (err: unknown) => {
        outcome = { err };
      },
    )
    .finally(() => wake?.());
  for (;;) {
    while (lines.length)
      yield create(EnsureImageTemplateEventSchema, { event: { case: 'progress', value: lines.shift() ?? '' } });
    if (outcome) break;
    await new Promise<void>((r) => {
      wake = r;
    });
    wake = undefined;
  }
  if ('err' in outcome) throw outcome.err;
  const { info } = outcome;
  const d = info.defaults;
  yield create(EnsureImageTemplateEventSchema, {
    event: {
      case: 'result',
      value: {
        template: toPbTemplate(info.template),
        reference: info.reference,
        manifestDigest: info.manifestDigest,
        config: {
          env: d.env,
          workdir: d.workdir ?? '',
          user: d.user ?? '',
          entrypoint: d.entrypoint ?? [],
          cmd: d.cmd ?? [],
        },
        downloadedBytes: BigInt(info.downloadedBytes),
        cachedLayers: info.cachedLayers,
        layerCount: info.layerCount,
      },
    },
  });
}
