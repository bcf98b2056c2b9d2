package io.ptune.cli;

import io.ptune.classify.ClassificationConfig;
import io.ptune.classify.ClassificationHead;
import io.ptune.classify.PromptClassifier;
import io.ptune.model.Model;
import java.nio.file.Path;
import java.util.Map;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * What {@code eval} and {@code classify} share: the model, and either a trained classifier
 * ({@code --adapter}, what {@code ptune train --task classify} wrote) or a zero-shot PET verbalizer
 * ({@code --template} and {@code --verbalizer}, no training).
 */
abstract class ClassifierCommand extends CliCommand {
    @Mixin
    ModelOptions model;

    @Option(names = "--adapter", paramLabel = "DIR",
            description = "Classifier directory written by `ptune train --task classify` (or a PEFT SEQ_CLS adapter);"
                    + " without it, a zero-shot verbalizer from --template and --verbalizer.")
    Path adapter;

    @Option(names = "--max-length", paramLabel = "N",
            description = "Zero-shot: longest input in tokens; longer texts lose their end (default: 256).")
    Integer maxLength;

    @Mixin
    ClassifierOptions classifier;

    @Override
    protected Map<String, String> flagNames() {
        return ClassifierOptions.FLAGS;
    }

    /** Checks the flags before anything is loaded; returns the zero-shot config (null with --adapter). */
    protected ClassificationConfig zeroShotConfig() {
        if (adapter != null) {
            if (!classifier.givenShapeFlags().isEmpty() || maxLength != null) {
                throw new IllegalArgumentException(String.join(", ", classifier.givenShapeFlags())
                        + (maxLength != null ? (classifier.givenShapeFlags().isEmpty() ? "" : ", ") + "--max-length" : "")
                        + ": the classifier in --adapter fixes these; remove them (they shape a zero-shot verbalizer"
                        + " without --adapter)");
            }
            return null;
        }
        if (classifier.verbalizer == null) {
            throw new IllegalArgumentException("give --adapter DIR (a trained classifier) or, zero-shot, --verbalizer"
                    + " \"negative=bad;positive=good\" with an optional --template");
        }
        ClassificationConfig config = classifier.config(ClassificationHead.VERBALIZER, 42);
        if (config.head() != ClassificationHead.VERBALIZER) {
            throw new IllegalArgumentException("--head " + config.head().cliName() + " has trainable parameters;"
                    + " train it with `ptune train --task classify` and pass --adapter (zero-shot is --head verbalizer)");
        }
        return config;
    }

    /** The trained or zero-shot classifier; zero-shot labels are the verbalizer's, in its order. */
    protected PromptClassifier open(Model lm, ClassificationConfig zeroShot) {
        if (zeroShot == null) {
            return PromptClassifier.load(lm, adapter);
        }
        return PromptClassifier.create(lm, null, zeroShot, zeroShot.verbalizer().labels(),
                maxLength == null ? 256 : maxLength);
    }
}
