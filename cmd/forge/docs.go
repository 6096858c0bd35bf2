package main

// docs holds the synopsis and examples of every command group and command,
// keyed "GROUP" or "GROUP VERB". TestHelpGolden fails when a command has
// none, so a new command comes with its help.
var docs = map[string]doc{
	"version": {"version [-o json]", "print the version and commit of forge, and of the server if reachable", []string{
		"forge version",
		"forge version -o json",
		"forge version --server http://forge.internal:7700",
	}},
	"server": {"server [--data-dir DIR] [--addr HOST:PORT] [flags]", "run the control plane: API, tracking, registry, jobs and serving", []string{
		"forge server                                   # ./forge-data, http://127.0.0.1:7700",
		"forge server --data-dir /srv/forge --addr 0.0.0.0:7700 --auth",
		"forge server --config forge.yaml --db postgres://forge@db/forge",
	}},
	"serve": {"serve --model-repo DIR | --server URL [flags]", "run a stateless inference server (Open Inference Protocol)", []string{
		"forge serve --model-repo ./models              # NAME/VERSION/model.onnx|model.json",
		"forge serve --model-repo ./models --poll 5s    # load new NAME/VERSION folders as they appear",
		"forge serve --server http://forge:7700 --addr 0.0.0.0:8000",
	}},
	"run": {"run [flags] -- CMD ARGS...", "run a training job on one of the server's executors", []string{
		"forge run -i train=cancer --wait -- python3 train.py",
		"forge run --name lr-sweep --gpus 1 --executor slurm -- python3 train.py --lr 0.01",
		"forge run -f job.yaml --wait",
	}},
	"deploy": {"deploy NAME MODEL@ALIAS|MODEL@VERSION [flags]", "serve a model version under a name, with an optional canary", []string{
		"forge deploy cancer cancer-xgb@prod",
		"forge deploy cancer cancer-xgb@3 --canary cancer-xgb@4 --canary-percent 10",
		"forge deploy iris iris@latest --max-batch-size 32 --max-queue-delay 2ms --log-payloads 0.1 --reference iris@3",
	}},
	"gc": {"gc [--dry-run] [--grace 24h]", "remove stored blobs that nothing refers to any more", []string{
		"forge gc --dry-run",
		"forge gc --grace 1h",
	}},

	"data": {"", "datasets: versioned tables stored as Parquet, queried with DuckDB", []string{
		"forge data add cancer ./cancer.csv",
		"forge data query \"SELECT diagnosis, count(*) FROM cancer GROUP BY 1\"",
		"forge data get cancer@1 --out cancer.parquet",
	}},
	"data add": {"data add NAME SOURCE [flags]", "add a version of a dataset from a file, a folder, a PostgreSQL query or a message queue", []string{
		"forge data add cancer ./cancer.csv",
		"forge data add orders postgres://app@db/shop --query \"SELECT * FROM orders\"",
		"forge data add clicks kafka://broker1:9092/clicks --from 2026-12-01T00:00:00Z   # then: --continue",
	}},
	"data follow": {"data follow NAME SOURCE --every 10m|100000rows", "let the server cut a new version from a topic or stream on a schedule", []string{
		"forge data follow clicks kafka://broker1:9092/clicks --every 10m",
		"forge data follow sensors nats://nats:4222/SENSORS --every 100000rows",
	}},
	"data follows": {"data follows [ls] | rm NAME", "list or remove the server's follows", []string{
		"forge data follows",
		"forge data follows rm clicks",
	}},
	"data dead-letters": {"data dead-letters NAME[@VERSION]", "print the messages of a queue version that could not be rows, as JSON lines", []string{
		"forge data dead-letters clicks@3",
	}},
	"data ls": {"data ls [NAME] [-o wide|json]", "list datasets and their latest versions, or a dataset's versions", []string{
		"forge data ls",
		"forge data ls cancer -o wide",
		"forge data ls -o json",
	}},
	"data show": {"data show NAME[@VERSION] [-o json]", "show a dataset version: schema, size, lineage", []string{
		"forge data show cancer",
		"forge data show cancer@2 -o json",
	}},
	"data rm": {"data rm NAME@VERSION [--force]", "remove a dataset version", []string{
		"forge data rm cancer@1",
		"forge data rm cancer@1 --force",
	}},
	"data query": {"data query SQL [flags]", "run a SELECT over datasets (each NAME or NAME@V is a table)", []string{
		"forge data query \"SELECT * FROM cancer LIMIT 5\"",
		"forge data query \"SELECT * FROM cancer@2\" -o csv --out cancer.csv",
		"forge data query \"SELECT diagnosis, avg(radius_mean) FROM cancer GROUP BY 1\" -o json",
	}},
	"data profile": {"data profile NAME[@VERSION] [-o json]", "per-column statistics: nulls, distinct values, exact quantiles, histogram, top values", []string{
		"forge data profile cancer",
		"forge data profile cancer@2 -o json",
	}},
	"data diff": {"data diff NAME@A NAME@B [-o json]", "compare two versions of a dataset: schema, rows, per-column drift", []string{
		"forge data diff cancer@1 cancer@2",
		"forge data diff cancer@1 cancer@2 -o json",
	}},
	"data get": {"data get NAME[@VERSION] --out FILE", "download a dataset version as Parquet, or CSV when FILE ends in .csv", []string{
		"forge data get cancer --out cancer.parquet",
		"forge data get cancer@2 --out cancer.csv",
	}},

	"deployments": {"", "list, show and remove deployments", []string{
		"forge deployments ls",
		"forge deployments show cancer -o json",
		"forge deployments rm cancer",
	}},
	"deployments ls": {"deployments ls [-o json]", "list deployments and what they serve", []string{
		"forge deployments ls",
		"forge deployments ls -o json",
	}},
	"deployments show": {"deployments show NAME [-o json]", "show a deployment: spec, targets and status", []string{
		"forge deployments show cancer",
		"forge deployments show cancer -o json",
	}},
	"deployments rm": {"deployments rm NAME", "stop serving a deployment", []string{
		"forge deployments rm cancer",
	}},

	"executors": {"", "the server's executors, where jobs run", []string{
		"forge executors ls",
		"forge executors ls -o json",
	}},
	"executors ls": {"executors ls [-o json]", "list the server's executors and their capacity", []string{
		"forge executors ls",
		"forge executors ls -o json",
	}},

	"jobs": {"", "list, inspect, follow or cancel training jobs", []string{
		"forge jobs ls --state running",
		"forge jobs logs -f JOB_ID",
		"forge jobs cancel JOB_ID",
	}},
	"jobs ls": {"jobs ls [--state STATE] [-o json]", "list jobs, newest first", []string{
		"forge jobs ls",
		"forge jobs ls --state failed -o json",
	}},
	"jobs show": {"jobs show JOB_ID [-o json]", "show a job: spec, state and every attempt", []string{
		"forge jobs show 0193e2c4-7b1a",
		"forge jobs show 0193e2c4-7b1a -o json",
	}},
	"jobs logs": {"jobs logs JOB_ID [-f] [--attempt N] [-o json]", "print a job's log; -f follows it to the job's end and says how it ended", []string{
		"forge jobs logs -f JOB_ID",
		"forge jobs logs --attempt 1 JOB_ID",
		"forge jobs logs JOB_ID -o json        # one {time, rank, line} object a line",
	}},
	"jobs cancel": {"jobs cancel JOB_ID", "cancel a queued or running job", []string{
		"forge jobs cancel JOB_ID",
	}},

	"sweep": {"sweep -f sweep.yaml [--wait] [-C DIR] [--no-code] [-o json]", "start a hyperparameter sweep (grid, random or TPE), every trial a job", []string{
		"forge sweep -f sweep.yaml",
		"forge sweep -f sweep.yaml --wait      # then print the best trial",
	}},
	"sweeps": {"", "list, show, stop or resume hyperparameter sweeps", []string{
		"forge sweeps ls",
		"forge sweeps show branin",
		"forge sweeps stop branin",
	}},
	"sweeps ls": {"sweeps ls [-o json]", "list sweeps, newest first", []string{
		"forge sweeps ls",
	}},
	"sweeps show": {"sweeps show NAME [-o json]", "show a sweep: its best trial, then every trial by objective", []string{
		"forge sweeps show branin",
		"forge sweeps show branin -o json",
	}},
	"sweeps stop": {"sweeps stop NAME", "stop a sweep, cancelling its running trials", []string{
		"forge sweeps stop branin",
	}},
	"sweeps resume": {"sweeps resume NAME", "continue a stopped sweep", []string{
		"forge sweeps resume branin",
	}},

	"feedback": {"feedback DEPLOYMENT REQUEST_ID LABEL | feedback DEPLOYMENT --file labels.jsonl", "send labels for logged predictions, joined by request id; forge monitor then shows live accuracy, AUC or RMSE", []string{
		"forge feedback cancer-api 3f2a9c 1",
		"forge feedback cancer-api --file labels.jsonl",
	}},
	"monitor": {"", "watch deployed models: drift against their training data, live quality from feedback", []string{
		"forge monitor cancer",
		"forge monitor drift cancer --window 10000rows -o json",
	}},
	"monitor show": {"monitor [show] DEPLOYMENT [--window 1h|10000rows] [-o json]", "the drift and quality report of a deployment, computed now (the gauges then show it)", []string{
		"forge monitor cancer",
		"forge monitor cancer --window 10000rows -o json",
	}},
	"monitor drift": {"monitor drift DEPLOYMENT [--window 1h|10000rows] [--reference DATASET@V] [-o json]", "per feature drift of the logged payloads against the reference (Evidently's tests and thresholds), and the share drifted", []string{
		"forge monitor drift cancer",
		"forge monitor drift cancer --window 30m --reference cancer@2",
	}},

	"model": {"", "the model registry: versions, aliases, downloads and events", []string{
		"forge model register cancer-xgb --run RUN_ID --path model",
		"forge model alias cancer-xgb prod 3",
		"forge model download cancer-xgb@prod --out ./model",
	}},
	"model register": {"model register NAME (--file PATH... | --run RUN_ID --path P) [flags]", "register a new version of a model from files or from a run's artifacts", []string{
		"forge model register iris --file model.onnx",
		"forge model register cancer-xgb --run RUN_ID --path model",
		"forge model register ranker --file ./predictor/ --format other",
	}},
	"model ls": {"model ls [NAME] [--filter EXPR] [-o wide|json]", "list registered models, or a model's versions", []string{
		"forge model ls",
		"forge model ls cancer-xgb",
		"forge model ls --filter \"name LIKE 'cancer%'\" -o json",
	}},
	"model show": {"model show NAME[@VERSION|@ALIAS] [-o json]", "show a model version: format, signature, aliases and lineage", []string{
		"forge model show cancer-xgb",
		"forge model show cancer-xgb@prod -o json",
	}},
	"model alias": {"model alias NAME ALIAS VERSION [--force] | model alias -d NAME ALIAS", "point an alias at a version (refused if the signature changes, unless --force), or delete it", []string{
		"forge model alias cancer-xgb prod 3",
		"forge model alias cancer-xgb prod 4 --force",
		"forge model alias -d cancer-xgb staging",
	}},
	"model download": {"model download NAME[@VERSION|@ALIAS] --out DIR", "download a model version's files into a folder", []string{
		"forge model download cancer-xgb@prod --out ./model",
		"forge model download iris@2 --out /tmp/iris",
	}},
	"model watch": {"model watch [--since SEQ] [--count N] [-o json]", "print registry events (versions, aliases) as they happen", []string{
		"forge model watch",
		"forge model watch --since 0 --count 10 -o json",
	}},

	"token": {"", "access tokens for --auth servers (needs an admin token)", []string{
		"forge token create ci --role write --expires 90d",
		"forge token ls",
		"forge token revoke ci",
	}},
	"token create": {"token create NAME [--role read|write|admin] [--expires 90d]", "create a token; its secret is printed once", []string{
		"forge token create alice",
		"forge token create ci --role write --expires 90d",
	}},
	"token ls": {"token ls [-o json]", "list tokens (never their secrets)", []string{
		"forge token ls",
		"forge token ls -o json",
	}},
	"token revoke": {"token revoke NAME", "revoke a token at once", []string{
		"forge token revoke ci",
	}},

	"experiments": {"", "tracking experiments (MLflow-compatible)", []string{
		"forge experiments ls",
		"forge experiments create cancer",
	}},
	"experiments ls": {"experiments ls [--all] [-o json]", "list experiments", []string{
		"forge experiments ls",
		"forge experiments ls --all -o json",
	}},
	"experiments create": {"experiments create NAME", "create an experiment", []string{
		"forge experiments create cancer",
		"forge experiments create cancer -o json",
	}},

	"runs": {"", "tracked runs: list, show, compare", []string{
		"forge runs ls --experiment cancer",
		"forge runs show RUN_ID",
		"forge runs compare RUN_A RUN_B",
	}},
	"runs ls": {"runs ls [--experiment NAME] [--filter EXPR] [--order-by EXPR] [--columns COLS] [-o json]", "list runs with their metrics, or the params, metrics and tags asked for", []string{
		"forge runs ls",
		"forge runs ls --experiment cancer --filter \"metrics.auc > 0.9\" --order-by \"metrics.auc DESC\"",
		"forge runs ls --columns params.max_depth,params.eta,metrics.val_auc",
	}},
	"runs show": {"runs show RUN_ID [-o json]", "show a run: params, metrics, tags, inputs", []string{
		"forge runs show RUN_ID",
		"forge runs show RUN_ID -o json",
	}},
	"runs compare": {"runs compare RUN_ID RUN_ID... [--all]", "compare runs side by side: params that differ, metrics", []string{
		"forge runs compare RUN_A RUN_B",
		"forge runs compare RUN_A RUN_B RUN_C --all",
	}},

	"artifacts": {"", "the files a run logged", []string{
		"forge artifacts ls RUN_ID",
		"forge artifacts ls RUN_ID model",
		"forge artifacts get RUN_ID model/model.json --out model.json",
	}},
	"artifacts ls": {"artifacts ls RUN_ID [PATH] [-o json]", "list a run's artifacts under PATH (default: the root)", []string{
		"forge artifacts ls RUN_ID",
		"forge artifacts ls RUN_ID model -o json",
	}},
	"artifacts get": {"artifacts get RUN_ID PATH [--out FILE|DIR]", "download an artifact file, or a folder of them", []string{
		"forge artifacts get RUN_ID metrics.json",
		"forge artifacts get RUN_ID model --out ./model",
	}},

	"completion": {"completion bash|zsh|fish", "print a shell completion script", []string{
		"source <(forge completion bash)",
		"forge completion zsh > \"${fpath[1]}/_forge\"",
		"forge completion fish > ~/.config/fish/completions/forge.fish",
	}},
	"help": {"help [COMMAND [SUBCOMMAND]]", "print help for forge, a command group or a command", []string{
		"forge help",
		"forge help data",
		"forge help data add",
	}},
}
