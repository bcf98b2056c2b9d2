package io.ptune.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.DatasetException;
import io.ptune.classify.ClassLoss;
import io.ptune.classify.ClassificationConfig;
import io.ptune.classify.ClassificationHead;
import io.ptune.classify.ClassificationSummary;
import io.ptune.classify.ClassificationTrainer;
import io.ptune.classify.EpochMetrics;
import io.ptune.classify.PromptClassifier;
import io.ptune.data.ClassificationDataset;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.report.TrainingPlots;
import io.ptune.train.DevMetric;
import io.ptune.train.MetricsWriter;
import io.ptune.train.NonFinitePolicy;
import io.ptune.train.TrainingSetting;
import io.ptune.train.TrainingConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code ptune train --task classify}: a classifier (any prompt method, or {@code --method none},
 * plus a linear, verbalizer or soft-verbalizer head) trained on labelled data with the dev set
 * evaluated after every epoch; {@code --metrics-out} gets a JSON line per step and one per epoch
 * ({@code {"epoch", "step", "train_loss", "dev_loss", "dev_accuracy", "dev_macro_f1"}}).
 */
final class ClassifyTraining {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(ClassifyTraining.class);
    private static final double DEFAULT_DEV_FRACTION = 0.1;

    private final TrainCommand flags;

    ClassifyTraining(TrainCommand flags) {
        this.flags = flags;
    }

    int run() {
        if (flags.resumeFrom != null || flags.resume || flags.saveEvery != null || flags.checkpointDir != null
                || flags.keepCheckpoints != null) {
            throw new IllegalArgumentException("--save-every, --checkpoint-dir, --keep-checkpoints, --resume and"
                    + " --resume-from are not supported with --task classify yet; classification runs are short,"
                    + " rerun them");
        }
        TrainingConfig training = flags.trainingConfig();
        if (training.onNonFinite() != NonFinitePolicy.STOP
                || SettingOptions.given(flags.spec, TrainingSetting.MAX_NONFINITE, Integer.class) != null) {
            throw new IllegalArgumentException("--on-nonfinite skip and --max-nonfinite are not supported with --task"
                    + " classify yet: a NaN or infinite loss stops the run");
        }
        boolean noPrompt = "none".equals(flags.method);
        if (noPrompt && (flags.virtualTokens != null || flags.init != null || flags.encoder != null
                || flags.encoderHiddenSize != null || flags.prefixProjection || flags.blocks != null
                || flags.generatorHiddenSize != null || training.twoStage() != null)) {
            throw new IllegalArgumentException("--method none trains the head alone; prompt flags (--virtual-tokens,"
                    + " --init, --encoder*, --prefix-projection, --blocks, --generator-hidden-size, --stage2-layers)"
                    + " need a prompt method");
        }
        PromptMethodConfig promptConfig = noPrompt ? null : flags.promptConfig();
        long seed = training.seed();
        ClassificationConfig config = flags.classifier.config(ClassificationHead.LINEAR, seed);
        ClassLoss loss = loss();
        if (flags.dev != null && flags.devFraction != null) {
            throw new IllegalArgumentException("--dev-fraction splits --data when no --dev file is given; give one of"
                    + " them");
        }
        ClassificationDataset all = flags.classifier.load(flags.data, null);
        ClassificationDataset train = all;
        ClassificationDataset dev = null;
        if (flags.dev != null) {
            dev = flags.classifier.load(flags.dev, all.labels());
        } else {
            double fraction = flags.devFraction == null ? DEFAULT_DEV_FRACTION : flags.devFraction;
            if (fraction < 0 || fraction >= 1) {
                throw new IllegalArgumentException("--dev-fraction must lie in [0, 1), got " + fraction);
            }
            if (fraction > 0 && all.labels().size() >= 2) {
                try {
                    List<ClassificationDataset> split = all.stratifiedSplit(fraction, seed);
                    train = split.get(0);
                    dev = split.get(1);
                } catch (DatasetException e) {
                    if (flags.devFraction != null) {
                        throw e;
                    }
                    LOG.warn("{}; training without a dev set", e.getMessage());
                }
            }
        }
        if (flags.trainExamples != null) {
            if (flags.trainExamples <= 0) {
                throw new IllegalArgumentException("--train-examples must be > 0, got " + flags.trainExamples);
            }
            train = train.stratifiedSample(flags.trainExamples, seed);
        }
        try (Model lm = flags.model.load();
                PromptClassifier classifier = PromptClassifier.create(lm, promptConfig, config, all.labels(),
                        training.maxLength());
                ClassificationTrainer trainer = new ClassificationTrainer(classifier, training, loss, train, dev);
                MetricsWriter metrics = flags.metricsOut == null ? null : new MetricsWriter(flags.metricsOut)) {
            if (metrics != null) {
                trainer.addListener(metrics::onStep);  // dev metrics go into the epoch lines
                trainer.addEpochListener(epoch -> metrics.write(epochJson(epoch)));
            }
            TrainingPlots plots = flags.noPlots ? null : new TrainingPlots();
            if (plots != null) {
                trainer.addListener(plots);  // dev metrics come through TrainingListener.onDev
            }
            ClassificationSummary summary = trainer.train();
            classifier.save(flags.out);
            EpochMetrics last = summary.epochs().get(summary.epochs().size() - 1);
            TrainingArgs.write(flags.out, TrainingArgs.resolved(flags.spec, training, flags.resolvedPromptFlags()));
            String metric = training.metric().columnName();
            TrainingArgs.writeResults(flags.out, TrainingArgs.results(summary.steps(), summary.firstLoss(),
                    summary.lastLoss(), last.dev() == null ? null : metric,
                    summary.bestEpoch() == 0 ? 0 : summary.epochs().get(summary.bestEpoch() - 1).step(),
                    summary.bestDevMetric(), training.patience() > 0 ? summary.bestDevMetric()
                            : last.dev() == null ? Double.NaN : devMetric(last.dev(), training.metric()),
                    summary.stoppedEarly()));
            if (plots != null) {
                if (last.dev() != null) {
                    plots.confusionMatrix(last.dev().metrics().labels(), last.dev().metrics().confusion());
                }
                plots.write(flags.out);
            }
            String devText = last.dev() == null ? "no dev set"
                    : String.format(Locale.ROOT, "dev accuracy %.4f macro-F1 %.4f (%d examples)",
                            last.dev().metrics().accuracy(), last.dev().metrics().macroF1(), last.dev().metrics().total());
            flags.out().printf(Locale.ROOT, "trained %d steps (%s head, %s, %d trainable parameters), loss %.4f -> %.4f;"
                    + " %s; classifier written to %s%n", summary.steps(), config.head().cliName(),
                    classifier.prompt() == null ? "no prompt" : classifier.prompt().method().cliName(),
                    classifier.trainableParameterCount(), summary.firstLoss(), summary.lastLoss(), devText, flags.out);
            flags.out().flush();
        }
        return 0;
    }

    private ClassLoss loss() {
        String kind = flags.loss == null ? "ce" : flags.loss.trim().toLowerCase(Locale.ROOT);
        List<Double> alpha = flags.focalAlpha == null ? null : parseNumbers(flags.focalAlpha, "--focal-alpha");
        switch (kind) {
            case "ce", "cross-entropy" -> {
                if (flags.focalGamma != null || alpha != null) {
                    throw new IllegalArgumentException("--focal-gamma and --focal-alpha need --loss focal");
                }
                return ClassLoss.crossEntropy(flags.labelSmoothing == null ? 0 : flags.labelSmoothing, null);
            }
            case "focal" -> {
                if (flags.labelSmoothing != null) {
                    throw new IllegalArgumentException("--label-smoothing applies to --loss ce, not focal");
                }
                return ClassLoss.focal(flags.focalGamma == null ? 2 : flags.focalGamma, alpha);
            }
            default -> throw new IllegalArgumentException("--loss '" + flags.loss + "' is not one of ce, focal");
        }
    }

    private static List<Double> parseNumbers(String text, String flag) {
        List<Double> values = new ArrayList<>();
        for (String part : text.split(",", -1)) {
            try {
                values.add(Double.parseDouble(part.trim()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(flag + ": '" + part.trim() + "' is not a number; write them like"
                        + " 0.25,0.75 (one per class, in label order)");
            }
        }
        return values;
    }

    private static double devMetric(PromptClassifier.Evaluation dev, DevMetric metric) {
        return switch (metric) {
            case DEV_LOSS -> dev.loss();
            case ACCURACY -> dev.metrics().accuracy();
            case MACRO_F1 -> dev.metrics().macroF1();
        };
    }

    static ObjectNode epochJson(EpochMetrics epoch) {
        ObjectNode json = JsonFiles.MAPPER.createObjectNode();
        json.put("epoch", epoch.epoch());
        json.put("step", epoch.step());
        json.put("train_loss", epoch.trainLoss());
        if (epoch.dev() != null) {
            json.put("dev_loss", epoch.dev().loss());
            json.put("dev_accuracy", epoch.dev().metrics().accuracy());
            json.put("dev_macro_f1", epoch.dev().metrics().macroF1());
        }
        return json;
    }
}
