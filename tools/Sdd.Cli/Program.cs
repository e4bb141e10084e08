using Sdd.Cli;
using Sdd.Ml.Data;

const string Usage = """
usage: sdd <command> [options]
  dataset portraits --count N --size S --seed K --out DIR
  dataset sheet     --dataset DIR [--count 8 --scale 4] --out sheet.png
  teacher train     --dataset DIR --out DIR [--steps N --batch B --size S --channels 32,64,96 --lr X --warmup N --decay-from N --ema D
                    --attention-below S --schedule linear|cosine --seed K --checkpoint-every N --limit N
                    --kind attribute-ddpm|latent-ddpm --vae DIR (latent: the UNet on that autoencoder's latents, --size in pixels)
                    --judge-steps N (then the judge under DIR/judge; 0: none) | --resume [--steps N --decay-from N --judge-steps N]]
                    (--decay-from: the learning rate falls along a half cosine from that step to zero at the last)
  teacher sample    [--teacher DIR] --set smiling=1,hat=-1 [--count 16 --guidance G --steps N --seed K] --out grid.png
  teacher eval      [--teacher DIR --judge DIR --samples 64 --guidance G --steps N --seed K --attributes A,B --json FILE
                    --misses DIR (grids of the samples judged wrong)]  (--judge: default the teacher's own, TEACHER/judge, else the shipped one)
  indicator         [--teacher DIR] --attribute A --dataset DIR --out DIR [--samples 32 --k 5 | --xi X --mode delta|cfg|sds --scale auto|S]
  distill           [--teacher DIR] --attribute A --dataset DIR --out DIR [--steps N --timesteps hqs|random|fixed:T|list:T1,T2
                    --mode delta|cfg|sds --scale auto|S --target 0.95 --calibration-steps N --lambda L --batch B --lr X
                    --editor masked|residual --mask-sparsity W --mask-smoothness W --positive-share F
                    --latent-gradient encoder|decoder (latent teachers) --decoder-step K --topk K --seed K --gate auto|G --resume]
                    (--gate: a masked editor's mask gate; auto, the default, chooses it after training as editor gate --auto does)
                    With a Stable Diffusion --teacher (diffusers folder or one .safetensors file): --prompt TEXT [--source-prompt TEXT
                    --config DIR]; --dataset is then a folder of plain photos (images/ or the folder itself; labels.csv ignored)
  editor gate       --editor DIR --gate G | --auto [--judge DIR --target 0.95 --images 100]
                    (a masked editor's mask gate, 0 to 1: mask values below G/2 no longer edit, 0 turns it off; --auto: the
                    largest gate at which the judge's editability on validation portraits is at --target or above)
  edit              --editor DIR --in DIR|FILES --out DIR [--batch 32 --format jpeg|png|webp (default: each input's)
                     --edit-outside-domain (images the editor's domain gate refuses are skipped, exit 1, unless given)]
  bench quality     [--teacher DIR --judge DIR --attributes A,B (all) --seeds 1,2,3 --images 100 --double-images 50 --policies hqs,random,fixed:500
                     --sdedit 100,150,200,300,400,600 --inversion 300,600 --json docs/results/bench-quality.json --work DIR --readme docs/results.md]  (resumable; --tables-only: tables from the JSON)
  bench editors     --editors DIR[,DIR...] [--judge DIR --sizes 128,512 --images 100 --split test|validation|confirmation --gates 0,0.2,own --json FILE --grid FILE.png]
                    (the same portraits at each size; sharpness; --judge: default the shipped judge of the editors' size;
                    --split confirmation: a second test set, read once; --gates: each masked editor once per mask gate, own: its config's;
                    --grid: 8 portraits of the first size, a row per editor between the sources and the counterfactuals)
  bench speed       [--teacher DIR --editor DIR --sizes 32,256,1024,2048 --quality FILE | --t0 N --json FILE --repeats 5]
                    (a Stable Diffusion --teacher with --prompt TEXT: SDEdit under that prompt is the baseline)
  bench domain      [--size 128 --train-images 2500 --validation-images 200 --images 1000 --sizes 128,512 --attribute smiling
                     --components 96 --split test|confirmation --photos DIR --json FILE]  (the domain gate an editor run makes: pass rates in and out of the portrait domain, cost)
  bench pipeline    [--images 1000 --size 32 --workers 1[,2] --threads T --worker-threads T --json FILE]  (needs ./sdd up)
  vae train         --dataset DIR --out DIR [--size 128 --channels 32,64,64 --steps 3000 --batch 16 --crop 0 (whole) --kl 1e-6 --resume]
  vae eval          --vae DIR --dataset DIR [--images 200 --json FILE]
  judge train       --dataset DIR --out DIR [--steps N --size S --batch B --lr X --seed K --augment yes|no (default: yes from 64 px) --colour yes|no (hue and saturation among the distortions; default yes)]
  judge eval        [--judge DIR] --dataset DIR [--vae DIR (also through an encode/decode round trip)]
  sd probe          --teacher DIR|FILE --prompt TEXT --latents L.npy|random:B,h,w --timestep T --out DIR [--image I.npy --config DIR]
                    (a Stable Diffusion 1.x/2.x diffusers folder or single .safetensors file: writes input_ids, text_embeddings,
                    eps, decoded and with --image encoded_mean as .npy; --config: for a single file, a folder with its
                    tokenizer/ and configs, default the file's folder; also `sdd lab sd probe`)
  sd tiny           --out DIR [--seed 1 --sd15-shapes]  (a tiny random SD 1.x pipeline as a diffusers folder, 64 px: the prompt
                    path without real weights; its edits mean nothing. --sd15-shapes: SD 1.5's sizes, 512 px, 4.3 GB, for memory and speed)
""";

var flags = new HashSet<string> { "resume", "help", "no-counterfactuals", "tables-only", "auto", "sd15-shapes", "edit-outside-domain" };
try
{
    if (args.Length == 0 || args[0] is "-h" or "--help" or "help") { Console.WriteLine(Usage); return 0; }
    var verb = args[0];
    string[] grouped = ["dataset", "teacher", "judge", "bench", "vae", "editor", "sd"];
    var sub = grouped.Contains(verb) && args.Length > 1 && !args[1].StartsWith("--", StringComparison.Ordinal) ? args[1] : null;
    var opts = new Options(args.Skip(sub is null ? 1 : 2), flags);
    Func<Options, int> command = (verb, sub) switch
    {
        ("dataset", "portraits") => DatasetCommands.Portraits,
        ("dataset", "sheet") => DatasetCommands.Sheet,
        ("teacher", "train") => TeacherCommands.Train,
        ("teacher", "sample") => TeacherCommands.Sample,
        ("teacher", "eval") => TeacherCommands.Eval,
        ("indicator", null) => MethodCommands.Indicator,
        ("distill", null) => MethodCommands.Distill,
        ("edit", null) => MethodCommands.Edit,
        ("editor", "gate") => MethodCommands.Gate,
        ("bench", "quality") => BenchCommands.Quality,
        ("bench", "speed") => BenchCommands.Speed,
        ("bench", "editors") => BenchCommands.Editors,
        ("bench", "pipeline") => PipelineBench.Run,
        ("bench", "domain") => DomainBench.Run,
        ("vae", "train") => AutoencoderCommands.Train,
        ("vae", "eval") => AutoencoderCommands.Eval,
        ("judge", "train") => JudgeCommands.Train,
        ("judge", "eval") => JudgeCommands.Eval,
        ("sd", "probe") => SdCommands.Probe,
        ("sd", "tiny") => SdCommands.Tiny,
        _ => throw new UsageException($"unknown command '{string.Join(' ', args.Take(sub is null ? 1 : 2))}' (run 'sdd help')"),
    };
    Sdd.Ml.Torch.TorchRuntime.ConfigureThreads(opts.Has("threads") ? opts.Int("threads", 0, 1, 256) : null);
    return command(opts);
}
catch (UsageException e) { Console.Error.WriteLine($"sdd: {e.Message}"); return 2; }
catch (Exception e) when (e is DatasetException or ImageDecodeException or FileNotFoundException or DirectoryNotFoundException or ArgumentException or InvalidDataException or NotSupportedException or Sdd.Ml.StableDiffusion.WeightsException)
{
    Console.Error.WriteLine($"sdd: {e.Message}");
    return 1;
}
