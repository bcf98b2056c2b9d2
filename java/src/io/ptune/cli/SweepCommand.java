package io.ptune.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.InvalidConfigException;
import io.ptune.internal.FileTrees;
import io.ptune.internal.JsonFiles;
import io.ptune.report.LineChart;
import io.ptune.train.DevMetric;
import io.ptune.train.TrainingSetting;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code ptune sweep}: a grid of real training runs ({@code ptune train --config FILE} with one
 * prompt length and learning rate each), every one with early stopping on the dev metric; the
 * results go to {@code sweep.csv} and {@code sweep.png}, the best adapter is kept. A sweep killed
 * part-way resumes where it stopped when run again with the same flags.
 */
@Command(name = "sweep", mixinStandardHelpOptions = true,
        description = "Hyper-parameter sweep: train one adapter per (virtual tokens, learning rate) pair of a run"
                + " config, each with early stopping on a dev set; write sweep.csv and sweep.png, keep the best"
                + " adapter. Run again with the same flags to resume a killed sweep.",
        exitCodeOnInvalidInput = 1, exitCodeOnExecutionException = 1)
final class SweepCommand extends CliCommand {
    static final String PLAN_FILE = "sweep.json";
    static final String TABLE_FILE = "sweep.csv";
    static final String PLOT_FILE = "sweep.png";
    static final String BEST_DIR = "best";
    static final String TRIALS_DIR = "trials";
    private static final String HEADER = "trial,virtual_tokens,lr,status,metric,value,best_step,steps,"
            + "stopped_early,seconds";

    @Option(names = "--out", required = true, paramLabel = "DIR",
            description = "The sweep's folder: sweep.csv, sweep.png, best/ (the best adapter), trials/ (logs).")
    Path out;

    @Option(names = "--virtual-tokens", paramLabel = "N,N,..",
            description = "Prompt lengths to try (default: the run config's, or 20).")
    String virtualTokens;

    @Option(names = "--lr", paramLabel = "SPEC",
            description = "Learning rates to try: a list (1e-3,3e-3,1e-2) or a range LOW:HIGH:log|lin:COUNT"
                    + " (1e-4:1e-2:log:5) (default: the run config's).")
    String lr;

    @Option(names = "--metric", paramLabel = "NAME",
            description = "The dev metric trials are ranked and stopped by: dev-loss (default) | accuracy | macro-f1"
                    + " (classification).")
    String metric;

    @Option(names = "--patience", paramLabel = "N",
            description = "Stop a trial after N evaluations without a better metric (default: 3).")
    int patience = 3;

    @Option(names = "--eval-every", paramLabel = "N",
            description = "Evaluate every N optimizer steps (default: the run config's, else once per epoch).")
    Long evalEvery;

    @Option(names = "--parallel", paramLabel = "K",
            description = "Run K trials at once, as separate processes sharing the cores (default: 1).")
    int parallel = 1;

    @Option(names = "--keep-all", description = "Keep every trial's adapter, not only the best.")
    boolean keepAll;

    @Override
    protected boolean configHoldsOwnFlags() {
        return false;  // --config is the trials' run config
    }

    /** One trial of the grid. */
    record Trial(String name, Integer virtualTokens, Double lr) {}

    /** A trial's row of sweep.csv. */
    record Row(Trial trial, String status, double value, long bestStep, long steps, boolean stoppedEarly,
            double seconds) {
        String csv(String metricName) {
            return String.join(",", trial.name(), trial.virtualTokens() == null ? "" : trial.virtualTokens().toString(),
                    trial.lr() == null ? "" : SweepValues.format(trial.lr()), status, metricName,
                    Double.isNaN(value) ? "" : Double.toString(value), Long.toString(bestStep), Long.toString(steps),
                    Boolean.toString(stoppedEarly), String.format(Locale.ROOT, "%.1f", seconds));
        }
    }

    @Override
    protected int run() throws Exception {
        if (config == null) {
            throw new IllegalArgumentException("--config FILE is required: the run config every trial trains with"
                    + " (ptune train's flags as keys, including a dev set: dev: FILE)");
        }
        if (parallel < 1) {
            throw new IllegalArgumentException("--parallel must be >= 1, got " + parallel);
        }
        if (patience < 1) {
            throw new IllegalArgumentException("--patience must be >= 1 (each trial stops early on the dev metric),"
                    + " got " + patience);
        }
        ObjectNode runConfig = RunConfigFile.read(config);
        DevMetric devMetric = metric();
        checkRunConfig(runConfig, devMetric);
        List<Integer> lengths = virtualTokens == null ? java.util.Collections.singletonList(null)
                : SweepValues.parseInts(virtualTokens, "--virtual-tokens");
        List<Double> rates = lr == null ? java.util.Collections.singletonList(null) : SweepValues.parse(lr);
        List<Trial> trials = new ArrayList<>();
        for (Integer n : lengths) {
            for (Double rate : rates) {
                trials.add(new Trial(trialName(n, rate), n, rate));
            }
        }
        TrainCommand.checkWritable(out, "--out");
        Files.createDirectories(out.resolve(TRIALS_DIR));
        checkPlan(plan(runConfig, devMetric, trials));
        Map<String, Row> done = readTable(devMetric);
        List<Trial> pending = trials.stream().filter(t -> !done.containsKey(t.name())).toList();
        if (!done.isEmpty()) {
            err().printf(Locale.ROOT, "resuming the sweep in %s: %d of %d trials done%n", out, done.size(),
                    trials.size());
            err().flush();
        }
        int threadsPerTrial = threads != null ? threads
                : Math.max(1, Runtime.getRuntime().availableProcessors() / parallel);
        ExecutorService pool = Executors.newFixedThreadPool(parallel);
        try {
            List<Future<Row>> running = new ArrayList<>();
            for (Trial trial : pending) {
                running.add(pool.submit(() -> {
                    Row row = runTrial(trial, devMetric, threadsPerTrial);
                    synchronized (done) {
                        done.put(trial.name(), row);
                        writeTable(trials, done, devMetric);
                    }
                    err().printf(Locale.ROOT, "trial %s: %s%n", trial.name(), row.status().equals("ok")
                            ? devMetric.columnName() + " " + String.format(Locale.ROOT, "%.4f", row.value())
                            : row.status());
                    err().flush();
                    return row;
                }));
            }
            for (Future<Row> future : running) {
                future.get();
            }
        } finally {
            pool.shutdownNow();
        }
        writeTable(trials, done, devMetric);
        Optional<Row> best = trials.stream().map(t -> done.get(t.name()))
                .filter(r -> r.status().equals("ok") && !Double.isNaN(r.value()))
                .min(Comparator.comparingDouble(r -> devMetric.higherIsBetter() ? -r.value() : r.value()));
        plot(trials, done, devMetric);
        if (best.isEmpty()) {
            throw new IllegalStateException("no trial of the sweep succeeded; see the logs in " + out.resolve(TRIALS_DIR));
        }
        keepBest(best.get(), trials);
        out().printf(Locale.ROOT, "%d trials; best %s: %s %.4f (virtual tokens %s, lr %s); adapter in %s%n",
                trials.size(), best.get().trial().name(), devMetric.columnName(), best.get().value(),
                best.get().trial().virtualTokens() == null ? "as configured" : best.get().trial().virtualTokens(),
                best.get().trial().lr() == null ? "as configured" : SweepValues.format(best.get().trial().lr()),
                out.resolve(BEST_DIR));
        out().flush();
        return 0;
    }

    private DevMetric metric() {
        if (metric == null) {
            return DevMetric.DEV_LOSS;
        }
        for (DevMetric candidate : DevMetric.values()) {
            if (candidate.name().equalsIgnoreCase(metric.strip().replace('-', '_'))) {
                return candidate;
            }
        }
        throw new IllegalArgumentException("--metric '" + metric + "' is not one of dev-loss, accuracy, macro-f1");
    }

    private void checkRunConfig(ObjectNode runConfig, DevMetric devMetric) {
        boolean classify = "classify".equals(runConfig.path("task").asText());
        if (!classify && !runConfig.hasNonNull("dev")) {
            throw new InvalidConfigException("config", config + " has no dev set; a sweep ranks trials on one: add"
                    + " 'dev: FILE' (Alpaca data held out from training)");
        }
        if (!classify && devMetric != DevMetric.DEV_LOSS) {
            throw new IllegalArgumentException("--metric " + devMetric.columnName() + " is for classification"
                    + " (task: classify); causal-LM trials are ranked by dev-loss");
        }
        for (String key : List.of("resume", "resume-from", "save-every")) {
            if (runConfig.has(key)) {
                throw new InvalidConfigException("config", config + ": '" + key + "' is not for sweeps; a killed"
                        + " sweep resumes by itself (run it again)");
            }
        }
    }

    static String trialName(Integer virtualTokens, Double lr) {
        List<String> parts = new ArrayList<>();
        if (virtualTokens != null) {
            parts.add("vt" + virtualTokens);
        }
        if (lr != null) {
            parts.add("lr" + SweepValues.format(lr));
        }
        return parts.isEmpty() ? "run" : String.join("-", parts);
    }

    private ObjectNode plan(ObjectNode runConfig, DevMetric devMetric, List<Trial> trials) {
        ObjectNode plan = JsonFiles.MAPPER.createObjectNode();
        plan.put("format", "ptune-sweep/1");
        plan.set("run_config", runConfig);
        plan.put("metric", devMetric.columnName());
        plan.put("patience", patience);
        if (evalEvery != null) {
            plan.put("eval_every", evalEvery);
        }
        trials.forEach(t -> plan.withArray("trials").add(t.name()));
        return plan;
    }

    /** Records the plan, or checks that a sweep already in {@code --out} is this one. */
    private void checkPlan(ObjectNode plan) throws IOException {
        Path file = out.resolve(PLAN_FILE);
        if (Files.exists(file)) {
            JsonNode saved = JsonFiles.readObject(file, IllegalArgumentException::new, "");
            if (!saved.equals(plan)) {
                throw new IllegalArgumentException(out + " holds another sweep (its " + PLAN_FILE + " differs: run"
                        + " config, metric, patience or grid); resume it with the same flags, or choose another"
                        + " --out");
            }
            return;
        }
        FileTrees.writeAtomically(file, JsonFiles.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(plan));
    }

    /** The rows of trials that finished (ok or failed) in an earlier run of this sweep. */
    private Map<String, Row> readTable(DevMetric devMetric) throws IOException {
        Map<String, Row> rows = new LinkedHashMap<>();
        Path file = out.resolve(TABLE_FILE);
        if (!Files.exists(file)) {
            return rows;
        }
        List<String> lines = Files.readAllLines(file);
        for (String line : lines.subList(Math.min(1, lines.size()), lines.size())) {
            String[] f = line.split(",", -1);
            if (f.length != HEADER.split(",").length) {
                throw new IllegalArgumentException(file + ": a row of " + f.length + " fields, expected "
                        + HEADER.split(",").length + " (" + HEADER + "); was the file edited?");
            }
            Trial trial = new Trial(f[0], f[1].isEmpty() ? null : Integer.valueOf(f[1]),
                    f[2].isEmpty() ? null : Double.valueOf(f[2]));
            rows.put(trial.name(), new Row(trial, f[3], f[5].isEmpty() ? Double.NaN : Double.parseDouble(f[5]),
                    Long.parseLong(f[6]), Long.parseLong(f[7]), Boolean.parseBoolean(f[8]), Double.parseDouble(f[9])));
        }
        return rows;
    }

    private void writeTable(List<Trial> trials, Map<String, Row> done, DevMetric devMetric) throws IOException {
        StringBuilder csv = new StringBuilder(HEADER).append('\n');
        for (Trial trial : trials) {
            Row row = done.get(trial.name());
            if (row != null) {
                csv.append(row.csv(devMetric.columnName())).append('\n');
            }
        }
        FileTrees.writeAtomically(out.resolve(TABLE_FILE), csv.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    /** Trains one trial in its own process; a failure is recorded, not thrown. */
    private Row runTrial(Trial trial, DevMetric devMetric, int trialThreads) throws IOException, InterruptedException {
        Path dir = out.resolve(TRIALS_DIR).resolve(trial.name());
        if (Files.exists(dir)) {
            FileTrees.delete(dir);  // a trial the last run of the sweep did not finish
        }
        Files.createDirectories(dir);
        Path adapter = dir.resolve("adapter");
        List<String> command = new ArrayList<>(List.of(javaExecutable(), "-cp", System.getProperty("java.class.path"),
                PtuneCli.class.getName(), "train", "--config", config.toAbsolutePath().toString(),
                "--out", adapter.toString(), "--patience", Integer.toString(patience),
                "--metric", devMetric.columnName(), "--threads", Integer.toString(trialThreads),
                "--metrics-out", dir.resolve("metrics.jsonl").toString()));
        if (trial.virtualTokens() != null) {
            command.addAll(List.of("--virtual-tokens", trial.virtualTokens().toString()));
        }
        if (trial.lr() != null) {
            command.addAll(List.of(TrainingSetting.LEARNING_RATE.flag(), Double.toString(trial.lr())));
        }
        if (evalEvery != null) {
            command.addAll(List.of(TrainingSetting.EVAL_EVERY.flag(), evalEvery.toString()));
        }
        long start = System.nanoTime();
        Process process = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(dir.resolve("train.log").toFile()).start();
        int exit;
        try {
            exit = process.waitFor();
        } catch (InterruptedException e) {
            process.destroyForcibly();
            throw e;
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        Path results = adapter.resolve(TrainingArgs.RESULTS_FILE);
        if (exit != 0 || !Files.isRegularFile(results)) {
            return new Row(trial, "failed", Double.NaN, 0, 0, false, seconds);
        }
        JsonNode json = JsonFiles.readObject(results, IllegalStateException::new, "");
        return new Row(trial, "ok", json.path("kept").asDouble(Double.NaN), json.path("best_step").asLong(),
                json.path("steps").asLong(), json.path("stopped_early").asBoolean(), seconds);
    }

    private static String javaExecutable() {
        return ProcessHandle.current().info().command().orElse(
                Path.of(System.getProperty("java.home"), "bin", "java").toString());
    }

    /** Keeps the best trial's adapter as {@code out/best} and deletes the others' (unless --keep-all). */
    private void keepBest(Row best, List<Trial> trials) throws IOException {
        Path source = out.resolve(TRIALS_DIR).resolve(best.trial().name()).resolve("adapter");
        Path target = out.resolve(BEST_DIR);
        if (Files.isDirectory(source)) {
            if (Files.exists(target)) {
                FileTrees.delete(target);
            }
            FileTrees.moveAtomically(source, target);
            FileTrees.syncDirectory(out);
        }
        if (!keepAll) {
            for (Trial trial : trials) {
                Path adapter = out.resolve(TRIALS_DIR).resolve(trial.name()).resolve("adapter");
                if (Files.exists(adapter)) {
                    FileTrees.delete(adapter);
                }
            }
        }
    }

    /** sweep.png: the metric against the learning rate, one line per prompt length (shortest first). */
    private void plot(List<Trial> trials, Map<String, Row> done, DevMetric devMetric) throws IOException {
        Map<Integer, List<Row>> lines = new TreeMap<>(Comparator.nullsFirst(Comparator.naturalOrder()));
        for (Trial trial : trials) {
            Row row = done.get(trial.name());
            if (row != null && row.status().equals("ok") && trial.lr() != null && !Double.isNaN(row.value())) {
                lines.computeIfAbsent(trial.virtualTokens(), k -> new ArrayList<>()).add(row);
            }
        }
        if (lines.isEmpty()) {
            return;
        }
        List<LineChart.Series> series = new ArrayList<>();
        lines.forEach((length, rows) -> series.add(new LineChart.Series(
                length == null ? "as configured" : length + " virtual tokens",
                rows.stream().mapToDouble(r -> r.trial().lr()).toArray(),
                rows.stream().mapToDouble(Row::value).toArray())));
        String label = switch (devMetric) {
            case DEV_LOSS -> "dev loss";
            case ACCURACY -> "dev accuracy";
            case MACRO_F1 -> "dev macro-F1";
        };
        LineChart.write(out.resolve(PLOT_FILE), "Sweep: " + label + " by learning rate", "learning rate", label, true,
                series);
    }
}
