# KFAS as an outside witness for pymc_dlm's non-Gaussian (count) log-likelihoods.
#
# Produced 2026-12-06 with R 4.2.2 Patched (2022-11-10 r83330) from Debian bookworm
# (r-base-core) and KFAS 1.6.0 built from source at commit
# 6211c227c28af52186737a5cd3cec55eaf91e396 (2025-05-20) of https://github.com/helske/KFAS,
# the parent of the newest commit 87fbe8c136e3bb151358af2b5186603094719a15 (2025-05-25).
# Both say Version 1.6.0 and differ only in the Fortran allocation of work arrays; 87fbe8c
# allocates the importance weights of logLik(..., nsim > 0) with nsim instead of
# 4 * nsim elements (src/ngloglik.f90), so with antithetics its estimate averages a quarter
# of the draws and divides by all of them: it is low by log(4) = 1.386. This script checks
# for that (it computes the estimate with and without antithetics and stops when they
# disagree); the Laplace values, the modes and the MLE are the same in both builds (checked
# to the last printed digit). README.md beside this file has the details. To build:
#
#   git clone https://github.com/helske/KFAS && git -C KFAS checkout 6211c22
#   R CMD INSTALL --no-build-vignettes KFAS      # KFAS imports only base R's stats
#
# Run from the repository root:
#
#   Rscript tests/counts/reference/kfas_van_drivers.R > tests/counts/reference/kfas_van_drivers.json
#
# (about 25 minutes on 2 cores, nearly all of it the importance sampling;
# `Rscript ... --no-importance` leaves it out, for a quick look). The model is Durbin &
# Koopman's (2012, §14.5) Poisson model of the van drivers killed in Great Britain (R's
# Seatbelts, VanKilled and the seat-belt law dummy): a local level, a dummy seasonal of
# period 12 with no disturbance and a static coefficient of the law dummy, every state
# diffuse. For each case the script prints the Laplace (approximating-model) log-likelihood
# logLik(model) (nsim = 0), the mode of the signal approxSSM(model)$thetahat, and the
# importance-sampling log-likelihood logLik(model, nsim = ...) for several seeds; and the
# maximum-likelihood estimate of the level's standard deviation. Every number is printed
# with 17 significant digits. See README.md beside this file for what the numbers mean
# and how they relate to pymc_dlm's.

suppressPackageStartupMessages(library(KFAS))

d <- read.csv("notebooks/data/seatbelts_van.csv")
# The CSV is R's own series, written out: check it.
stopifnot(
  nrow(d) == 192,
  all(d$VanKilled == as.numeric(Seatbelts[, "VanKilled"])),
  all(d$law == as.numeric(Seatbelts[, "law"]))
)

van_model <- function(sigma, data, distribution = "poisson", u = NULL) {
  f <- VanKilled ~ law + SSMtrend(1, Q = list(matrix(sigma^2))) +
    SSMseasonal(12, sea.type = "dummy", Q = 0)
  if (is.null(u)) {
    SSModel(f, data = data, distribution = distribution)
  } else {
    SSModel(f, data = data, distribution = distribution, u = u)
  }
}

# The mode of the signal to round-off. approxSSM stops when the relative change of
# log p(theta | y) falls below tol (1e-8 by default); started again from that mode it takes
# two more Newton steps (the first always counts as unconverged), after which the mode
# does not move at the printed precision. `mode_move` records how far the default
# stopping point was from the refined mode.
signal_mode <- function(model) {
  first <- approxSSM(model)
  refined <- approxSSM(model, theta = first$thetahat)
  # The states' mode: the smoothed states of the approximating Gaussian model at the mode
  # (a Gaussian SSModel), in KFAS's order of states, alpha_t for t = 1..n.
  alphahat <- KFS(refined, smoothing = "state", filtering = "none")$alphahat
  list(
    thetahat = as.numeric(refined$thetahat),
    alphahat = alphahat,
    mode_move = max(abs(refined$thetahat - first$thetahat)),
    iterations = c(first$iterations, refined$iterations)
  )
}

WITH_IMPORTANCE <- !("--no-importance" %in% commandArgs(trailingOnly = TRUE))
IS_NSIM <- 10000L # with antithetics: 4 * nsim draws per estimate (location and scale)
IS_SEEDS <- 1:40
PLAIN_SEEDS <- 101:110 # the check without antithetics: nsim draws per estimate

estimates <- function(model, theta, seeds, antithetics) {
  vals <- vapply(seeds, function(s) {
    as.numeric(logLik(model, nsim = IS_NSIM, seed = s, theta = theta,
      antithetics = antithetics))
  }, numeric(1))
  list(values = vals, mean = mean(vals), sd = sd(vals), se = sd(vals) / sqrt(length(vals)))
}

importance <- function(model, theta) {
  anti <- estimates(model, theta, IS_SEEDS, TRUE)
  plain <- estimates(model, theta, PLAIN_SEEDS, FALSE)
  z <- (anti$mean - plain$mean) / sqrt(anti$se^2 + plain$se^2)
  if (abs(z) > 5) {
    stop(sprintf(paste(
      "importance sampling with and without antithetics disagree (%.6f vs %.6f, z = %.1f):",
      "this KFAS build probably has the weight-array bug of commit 87fbe8c; use 6211c22"),
      anti$mean, plain$mean, z))
  }
  list(antithetic = anti, plain = plain, z = z)
}

run_case <- function(model, with_importance = TRUE) {
  mode <- signal_mode(model)
  out <- list(
    # logLik with its defaults (the approximating model where approxSSM's default
    # iteration stops)
    loglik_default = as.numeric(logLik(model)),
    # logLik started from the refined mode: the approximating model at the mode
    loglik = as.numeric(logLik(model, theta = mode$thetahat)),
    # logLik with the default theta but convtol 1e-12: a second refinement route
    loglik_convtol = as.numeric(logLik(model, convtol = 1e-12, maxiter = 200)),
    thetahat = mode$thetahat,
    alphahat = mode$alphahat,
    mode_move = mode$mode_move,
    n_diffuse = sum(model$P1inf),
    n_observed = sum(!is.na(model$y))
  )
  if (with_importance && WITH_IMPORTANCE) {
    out$importance <- importance(model, mode$thetahat)
  }
  out
}

# ---- maximum likelihood (Laplace log-likelihood, nsim = 0) -------------------------------
# fitSSM, as in KFAS's documentation: the level variance exp(par) with BFGS ...
na_model <- SSModel(VanKilled ~ law + SSMtrend(1, Q = list(matrix(NA))) +
  SSMseasonal(12, sea.type = "dummy", Q = 0), data = d, distribution = "poisson")
fit <- fitSSM(na_model, inits = log(0.001), method = "BFGS")
fitssm_sigma <- sqrt(as.numeric(fit$model$Q[1, 1, 1]))
fitssm_loglik <- -fit$optim.out$value
# ... and a one-dimensional search on log sigma with a tight tolerance.
neg_loglik <- function(log_sigma) -as.numeric(logLik(van_model(exp(log_sigma), d)))
opt <- optimize(neg_loglik, c(log(1e-3), log(0.2)), tol = 1e-9)
mle_sigma <- exp(opt$minimum)
mle_loglik <- -opt$objective

SIGMA <- signif(mle_sigma, 4)

# ---- the weight-array bug of KFAS commit 87fbe8c (README.md): refuse such a build early ----
if (WITH_IMPORTANCE) {
  probe <- van_model(SIGMA, d)
  gap <- as.numeric(logLik(probe, nsim = 1000, seed = 1)) -
    as.numeric(logLik(probe, nsim = 1000, seed = 1, antithetics = FALSE))
  if (abs(gap) > 0.5) {
    stop(sprintf(paste(
      "logLik(nsim = 1000) with antithetics minus without is %.4f (log 4 = 1.3863 low):",
      "this KFAS build has the weight-array bug of commit 87fbe8c; use 6211c22"), gap))
  }
}

# ---- the cases ---------------------------------------------------------------------------
d_missing <- d
MISSING <- c(5L, 60L, 61L, 62L, 150L) # 1-based months
d_missing$VanKilled[MISSING] <- NA

NB_ALPHA <- 20
BIN_EXTRA <- 30
trials <- d$VanKilled + BIN_EXTRA
# The lower quartile, not the median: every month after the law has VanKilled <= 8 (the
# median), so "above the median" separates the law's coefficient (no finite mode).
BERN_THRESHOLD <- as.numeric(quantile(d$VanKilled, 0.25))
stopifnot(BERN_THRESHOLD == 6)
d_bern <- d
d_bern$VanKilled <- as.numeric(d$VanKilled > BERN_THRESHOLD)
exposure <- 1 + (1:192) / 192

cases <- list(
  poisson = run_case(van_model(SIGMA, d)),
  poisson_missing = run_case(van_model(SIGMA, d_missing)),
  negative_binomial = run_case(van_model(SIGMA, d, "negative binomial", u = NB_ALPHA)),
  binomial = run_case(van_model(SIGMA, d, "binomial", u = trials)),
  bernoulli = run_case(van_model(SIGMA, d_bern, "binomial", u = 1)),
  poisson_offset = run_case(van_model(SIGMA, d, "poisson", u = exposure))
)

# ---- JSON by hand (base R has no JSON writer) ----------------------------------------------
num <- function(x) {
  s <- sprintf("%.17g", x)
  if (length(x) == 1) s else paste0("[", paste(s, collapse = ", "), "]")
}
int <- function(x) if (length(x) == 1) sprintf("%d", as.integer(x)) else
  paste0("[", paste(sprintf("%d", as.integer(x)), collapse = ", "), "]")
str <- function(x) paste0("\"", x, "\"")
obj <- function(fields, indent = "  ") {
  inner <- paste0(indent, "  ", str(names(fields)), ": ", unlist(fields))
  paste0("{\n", paste(inner, collapse = ",\n"), "\n", indent, "}")
}
case_json <- function(cs) {
  fields <- list(
    loglik = num(cs$loglik),
    loglik_default = num(cs$loglik_default),
    loglik_convtol = num(cs$loglik_convtol),
    n_diffuse = int(cs$n_diffuse),
    n_observed = int(cs$n_observed),
    mode_move = num(cs$mode_move),
    thetahat = num(cs$thetahat),
    state_names = paste0("[", paste(str(colnames(cs$alphahat)), collapse = ", "), "]"),
    # one row per time step, as a flat list in time-major order (row t, then state)
    alphahat = num(as.numeric(t(cs$alphahat)))
  )
  is_json <- function(e, seeds, draws) obj(list(
    seeds = int(seeds),
    draws_per_estimate = int(draws),
    values = num(e$values),
    mean = num(e$mean),
    sd = num(e$sd),
    se_of_mean = num(e$se)
  ), "        ")
  if (!is.null(cs$importance)) {
    fields$importance <- obj(list(
      nsim = int(IS_NSIM),
      antithetic = is_json(cs$importance$antithetic, IS_SEEDS, 4 * IS_NSIM),
      plain = is_json(cs$importance$plain, PLAIN_SEEDS, IS_NSIM),
      z_antithetic_minus_plain = num(cs$importance$z)
    ), "      ")
  }
  obj(fields, "    ")
}

top <- list(
  provenance = str(paste0(
    "tests/counts/reference/kfas_van_drivers.R; ", R.version.string, "; KFAS ",
    as.character(packageVersion("KFAS")), " (commit 6211c227c28af52186737a5cd3cec55eaf91e396)"
  )),
  data = str("notebooks/data/seatbelts_van.csv (R datasets::Seatbelts, VanKilled and law)"),
  sigma = num(SIGMA),
  inputs = obj(list(
    missing_months_1based = int(MISSING),
    nb_alpha = num(NB_ALPHA),
    binomial_trials = str("VanKilled + 30"),
    bernoulli = str("VanKilled > 6 (the lower quartile), trials 1"),
    bernoulli_threshold = num(BERN_THRESHOLD),
    poisson_exposure = str("1 + t / 192, t = 1..192 (KFAS u; pymc_dlm offset log(exposure))")
  )),
  mle = obj(list(
    sigma = num(mle_sigma),
    loglik = num(mle_loglik),
    method = str("optimize() on log sigma of -logLik(model), tol 1e-9"),
    fitssm_sigma = num(fitssm_sigma),
    fitssm_loglik = num(fitssm_loglik),
    fitssm_method = str("fitSSM(Q = NA, inits = log(0.001), method = 'BFGS'), variance exp(par)")
  )),
  cases = obj(lapply(cases, case_json))
)
cat(obj(top, ""), "\n", sep = "")
